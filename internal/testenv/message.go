package testenv

import "github.com/xcept/xcept/internal/cli"

// UserMessage is err's message as a verb that has a flag for every option
// shows it (cli.NameFlags): a domain package's test checks the words the
// user reads ("--top-k 0: ...") of an error that names a fault.Option.
// Nil is "".
func UserMessage(err error) string {
	if err == nil {
		return ""
	}
	return cli.NameFlags(err, func(string) (string, bool) { return "", true }, nil).Error()
}
