package audit

// Scores measure an audit against known flipped labels.
type Scores struct {
	Flipped   int     `json:"flipped"`
	Found     int     `json:"found"` // flipped images among the issues
	Issues    int     `json:"issues"`
	Precision float64 `json:"precision"` // found / issues (0 with no issues)
	Recall    float64 `json:"recall"`    // found / flipped (0 with nothing flipped)
}

// Score compares the issues with the images known to be flipped.
func Score(issues []int, flipped []bool) Scores {
	s := Scores{Issues: len(issues)}
	for _, f := range flipped {
		if f {
			s.Flipped++
		}
	}
	for _, i := range issues {
		if flipped[i] {
			s.Found++
		}
	}
	if s.Issues > 0 {
		s.Precision = float64(s.Found) / float64(s.Issues)
	}
	if s.Flipped > 0 {
		s.Recall = float64(s.Found) / float64(s.Flipped)
	}
	return s
}
