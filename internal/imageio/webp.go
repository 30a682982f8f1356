package imageio

import "image"

// webpToRGBA converts lossy WebP pixels, which golang.org/x/image/webp
// returns as image.YCbCr or image.NYCbCrA, to opaque RGBA. VP8 stores
// limited-range BT.601 YUV (luma 16–235) while image.YCbCr's own conversion
// assumes JPEG's full range, which would wash every WebP out (red 221 reads
// as 209). Transparency is composited over white, as everywhere else.
func webpToRGBA(src image.Image) (*image.RGBA, bool) {
	var yc *image.YCbCr
	var alpha []uint8
	var aStride int
	switch m := src.(type) {
	case *image.YCbCr:
		yc = m
	case *image.NYCbCrA:
		yc, alpha, aStride = &m.YCbCr, m.A, m.AStride
	default:
		return nil, false
	}
	b := yc.Rect
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	transparent := false
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := dst.Pix[(y-b.Min.Y)*dst.Stride:]
		for x := b.Min.X; x < b.Max.X; x++ {
			yi, ci := yc.YOffset(x, y), yc.COffset(x, y)
			c := 298 * (int32(yc.Y[yi]) - 16)
			d, e := int32(yc.Cb[ci])-128, int32(yc.Cr[ci])-128
			r := (c + 409*e + 128) >> 8
			g := (c - 100*d - 208*e + 128) >> 8
			bl := (c + 516*d + 128) >> 8
			if alpha != nil {
				a := int32(alpha[(y-b.Min.Y)*aStride+(x-b.Min.X)])
				if a < 255 {
					transparent = true
				}
				r, g, bl = overWhite(clamp8(r), a), overWhite(clamp8(g), a), overWhite(clamp8(bl), a)
			}
			p := row[4*(x-b.Min.X):]
			p[0], p[1], p[2], p[3] = uint8(clamp8(r)), uint8(clamp8(g)), uint8(clamp8(bl)), 255
		}
	}
	return dst, transparent
}

func clamp8(v int32) int32 { return min(255, max(0, v)) }

// overWhite composites a straight-alpha channel value over white.
func overWhite(c, a int32) int32 { return (c*a + 255*(255-a) + 127) / 255 }
