package imageio

import (
	"bytes"
	"image/png"
)

// ServingFeed returns the bytes to feed a serving graph (TensorFlow's own
// JPEG/PNG decoders) so that it sees data exactly as prepare saw it when it
// made the training images. The file is first decoded fully here, so a
// broken or oversized file is an error and TensorFlow only ever decodes
// images Go has decoded. JPEG and PNG go as they are; what TensorFlow would
// decode otherwise (an EXIF orientation other than 1, which it ignores;
// animations; GIF, BMP, WebP and TIFF) goes as the upright image re-encoded
// as PNG, lossless at any compression level (the fastest is used), and
// converted says why ("" when the file's own bytes are fed). predict and
// serve share this rule so that they answer alike.
func ServingFeed(data []byte, lim Limits) (feed []byte, converted string, err error) {
	img, info, err := Decode(data, lim)
	if err != nil {
		return nil, "", err
	}
	switch {
	case info.Orientation != 1:
		converted = ConvOrientation
	case info.Frames > 1:
		converted = ConvFirstFrame
	case info.Format != JPEG && info.Format != PNG:
		converted = string(info.Format)
	default:
		return data, "", nil
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), converted, nil
}
