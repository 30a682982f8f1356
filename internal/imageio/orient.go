package imageio

import "image"

// Orient returns img turned upright for EXIF orientation o (1–8), the
// transform that EXIF 2.3 section 4.6.4 assigns to each value. 1 and unknown
// values return img itself.
func Orient(img *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return img
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	ow, oh := w, h
	if o >= 5 { // 5–8 swap the axes
		ow, oh = h, w
	}
	// source returns the stored pixel shown at upright position (x, y).
	var source func(x, y int) (int, int)
	switch o {
	case 2: // mirrored left-right
		source = func(x, y int) (int, int) { return w - 1 - x, y }
	case 3: // turned 180°
		source = func(x, y int) (int, int) { return w - 1 - x, h - 1 - y }
	case 4: // mirrored top-bottom
		source = func(x, y int) (int, int) { return x, h - 1 - y }
	case 5: // transposed
		source = func(x, y int) (int, int) { return y, x }
	case 6: // needs 90° clockwise
		source = func(x, y int) (int, int) { return y, h - 1 - x }
	case 7: // transversed
		source = func(x, y int) (int, int) { return w - 1 - y, h - 1 - x }
	case 8: // needs 90° anticlockwise
		source = func(x, y int) (int, int) { return w - 1 - y, x }
	}
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))
	for y := 0; y < oh; y++ {
		row := out.Pix[y*out.Stride:]
		for x := 0; x < ow; x++ {
			sx, sy := source(x, y)
			s := img.PixOffset(img.Rect.Min.X+sx, img.Rect.Min.Y+sy)
			copy(row[4*x:4*x+4], img.Pix[s:s+4])
		}
	}
	return out
}
