package imageio

import (
	"bytes"
	"encoding/binary"
)

// exifPrefix starts the EXIF payload of a JPEG APP1 segment; some PNG and
// WebP writers copy it into their EXIF chunks too.
var exifPrefix = []byte("Exif\x00\x00")

// Orientation returns the EXIF orientation (1–8) that data of format f
// declares, 1 when it declares none or the metadata is malformed: a broken
// tag must never cost the user an image. It reads JPEG APP1, PNG eXIf, WebP
// EXIF chunks and a TIFF file's own first IFD.
func Orientation(f Format, data []byte) int {
	var tiff []byte
	switch f {
	case JPEG:
		tiff = jpegEXIF(data)
	case PNG:
		tiff = pngEXIF(data)
	case WebP:
		tiff = webpEXIF(data)
	case TIFF:
		tiff = data
	}
	return tiffOrientation(bytes.TrimPrefix(tiff, exifPrefix))
}

// jpegEXIF walks the JPEG marker segments up to the first scan and returns
// the payload of the EXIF APP1 segment, after its "Exif\0\0" prefix.
func jpegEXIF(data []byte) []byte {
	i := 2 // after SOI
	for i+4 <= len(data) {
		if data[i] != 0xFF {
			return nil
		}
		marker := data[i+1]
		if marker == 0xFF { // fill byte before a marker
			i++
			continue
		}
		if marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8) {
			i += 2 // markers without a length
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan, end of image
			return nil
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return nil
		}
		seg := data[i+4 : i+2+n]
		if marker == 0xE1 && bytes.HasPrefix(seg, exifPrefix) {
			return seg[len(exifPrefix):]
		}
		i += 2 + n
	}
	return nil
}

// pngEXIF returns the data of the eXIf chunk, wherever it sits before IEND.
func pngEXIF(data []byte) []byte {
	for i := 8; i+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		if n < 0 || i+12+n > len(data) || typ == "IEND" {
			return nil
		}
		if typ == "eXIf" {
			return data[i+8 : i+8+n]
		}
		i += 12 + n
	}
	return nil
}

// webpEXIF returns the data of the RIFF "EXIF" chunk of an extended WebP.
func webpEXIF(data []byte) []byte {
	for i := 12; i+8 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[i+4:]))
		if n < 0 || i+8+n > len(data) {
			return nil
		}
		if string(data[i:i+4]) == "EXIF" {
			return data[i+8 : i+8+n]
		}
		i += 8 + n + n&1 // chunks are padded to an even size
	}
	return nil
}

// tiffOrientation reads tag 0x0112 from the first IFD of a TIFF structure
// (the layout of EXIF data and of TIFF files alike).
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:]) != 42 {
		return 1
	}
	ifd := int64(bo.Uint32(t[4:]))
	if ifd+2 > int64(len(t)) {
		return 1
	}
	count := int64(bo.Uint16(t[ifd:]))
	for e := ifd + 2; e+12 <= int64(len(t)) && e < ifd+2+count*12; e += 12 {
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		var v int
		switch bo.Uint16(t[e+2:]) {
		case 3: // SHORT, the type the EXIF standard specifies
			v = int(bo.Uint16(t[e+8:]))
		case 4: // LONG, written by a few tools
			v = int(bo.Uint32(t[e+8:]))
		default:
			return 1
		}
		if v < 1 || v > 8 {
			return 1
		}
		return v
	}
	return 1
}
