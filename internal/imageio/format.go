// Package imageio decodes every image format xcept accepts into upright,
// opaque 8-bit RGB, and resizes and re-encodes it. prepare, predict and serve
// share it so that any image prepare accepts is accepted everywhere, with the
// same colour handling.
package imageio

import (
	"bytes"
	"path"
	"strings"
)

// Format is an image container format, decided by content, never by name.
type Format string

// Formats xcept decodes. The values are what tf.Example's image/format and
// manifest.json carry.
const (
	Unknown Format = ""
	JPEG    Format = "jpeg"
	PNG     Format = "png"
	GIF     Format = "gif"
	BMP     Format = "bmp"
	WebP    Format = "webp"
	TIFF    Format = "tiff"
)

// Sniff decides the format of data by its first bytes. A known image format
// that xcept cannot decode (HEIC, AVIF, JPEG 2000, ...) is returned as
// Unknown with its name in unsupported, so the report can say what it was.
func Sniff(data []byte) (f Format, unsupported string) {
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return JPEG, ""
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, ""
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return GIF, ""
	case len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return WebP, ""
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return TIFF, ""
	case isBMP(data):
		return BMP, ""
	}
	return Unknown, sniffUnsupported(data)
}

// isBMP checks "BM" plus a known DIB header size: two bytes alone would
// claim too many text files.
func isBMP(data []byte) bool {
	if len(data) < 18 || data[0] != 'B' || data[1] != 'M' {
		return false
	}
	switch uint32(data[14]) | uint32(data[15])<<8 | uint32(data[16])<<16 | uint32(data[17])<<24 {
	case 12, 16, 40, 52, 56, 64, 108, 124:
		return true
	}
	return false
}

// sniffUnsupported names image formats users commonly have but xcept does
// not decode, so that the report can tell them to convert the files.
func sniffUnsupported(data []byte) string {
	if len(data) >= 12 && string(data[4:8]) == "ftyp" {
		switch string(data[8:12]) {
		case "heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1":
			return "HEIC/HEIF"
		case "avif", "avis":
			return "AVIF"
		}
	}
	switch {
	case bytes.HasPrefix(data, []byte("\x00\x00\x00\x0cjP  \r\n\x87\n")), bytes.HasPrefix(data, []byte{0xFF, 0x4F, 0xFF, 0x51}):
		return "JPEG 2000"
	case bytes.HasPrefix(data, []byte{0xFF, 0x0A}), bytes.HasPrefix(data, []byte("\x00\x00\x00\x0cJXL \r\n\x87\n")):
		return "JPEG XL"
	case bytes.HasPrefix(data, []byte("8BPS")):
		return "Photoshop PSD"
	case bytes.HasPrefix(data, []byte{0x00, 0x00, 0x01, 0x00}) && len(data) > 6 && data[4] > 0:
		return "ICO"
	}
	return ""
}

// extFormats maps lower-case file extensions to the format they promise.
var extFormats = map[string]Format{
	".jpg": JPEG, ".jpeg": JPEG, ".jpe": JPEG, ".jfif": JPEG,
	".png": PNG,
	".gif": GIF,
	".bmp": BMP, ".dib": BMP,
	".webp": WebP,
	".tif":  TIFF, ".tiff": TIFF,
}

// ExtensionFormat is the format a file name promises (case-insensitive),
// Unknown for names without a known image extension.
func ExtensionFormat(name string) Format {
	return extFormats[strings.ToLower(path.Ext(name))]
}

// Name is the format's name as people write it, for messages.
func (f Format) Name() string {
	switch f {
	case JPEG, PNG, GIF, BMP, TIFF:
		return strings.ToUpper(string(f))
	case WebP:
		return "WebP"
	}
	return "unknown"
}
