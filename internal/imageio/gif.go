package imageio

// gifFrames counts the frames of a GIF by walking its block structure without
// decoding any pixels: gif.DecodeAll would hold every frame in memory, which
// an animated GIF can turn into a decompression bomb. A malformed tail ends
// the count; the first frame has been decoded and checked separately.
func gifFrames(data []byte) int {
	if len(data) < 13 {
		return 0
	}
	i := 13
	if data[10]&0x80 != 0 {
		i += 3 << ((data[10] & 7) + 1)
	}
	frames := 0
	for i < len(data) {
		switch data[i] {
		case 0x21: // extension: label, then sub-blocks
			i = skipSubBlocks(data, i+2)
		case 0x2C: // image descriptor, optional local colour table, LZW size, sub-blocks
			if i+10 > len(data) {
				return frames
			}
			frames++
			packed := data[i+9]
			i += 10
			if packed&0x80 != 0 {
				i += 3 << ((packed & 7) + 1)
			}
			i = skipSubBlocks(data, i+1)
		default: // 0x3B trailer, or garbage after the last frame
			return frames
		}
	}
	return frames
}

// skipSubBlocks returns the index after a run of GIF data sub-blocks
// starting at i, or len(data) when they run past the end.
func skipSubBlocks(data []byte, i int) int {
	for i < len(data) {
		n := int(data[i])
		i++
		if n == 0 {
			return i
		}
		i += n
	}
	return len(data)
}
