//! Slices and images to CLIP's input: a square of `size` pixels (224 for ViT-L/14), the
//! content resized with its physical aspect kept (bilinear, pixel centres aligned as
//! PyTorch's `align_corners=False`), centred and padded with black; grey replicated to three
//! channels (an RGB image keeps its three); then CLIP's per-channel mean and standard deviation. Unlike CLIP's own
//! centre-crop, padding keeps the whole slice, so a map can be mapped back onto all of it
//! through [`Placement`]. An image already square at `size` with square pixels is only
//! normalised.

use cue_volume::WindowLevel;

/// CLIP's channel means (RGB).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's channel standard deviations (RGB).
// Written with the digits OpenAI published, beyond f32's precision.
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Where the content sits inside the square input, to map results back to the slice.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// Left edge of the content, in input pixels.
    pub left: f64,
    /// Top edge of the content, in input pixels.
    pub top: f64,
    /// Width of the content, in input pixels.
    pub width: f64,
    /// Height of the content, in input pixels.
    pub height: f64,
}

impl Placement {
    /// The input-pixel position of slice pixel centre (column, row) of a slice of
    /// `slice_width` x `slice_height` pixels.
    pub fn input_position(&self, column: f64, row: f64, slice_width: usize, slice_height: usize) -> (f64, f64) {
        (
            self.left + (column + 0.5) / slice_width as f64 * self.width - 0.5,
            self.top + (row + 0.5) / slice_height as f64 * self.height - 0.5,
        )
    }
}

/// A preprocessed image: `3 x size x size`, channel-major (CHW).
#[derive(Clone, Debug, PartialEq)]
pub struct ClipInput {
    /// Side in pixels.
    pub size: usize,
    /// Normalised values, CHW.
    pub pixels: Vec<f32>,
    /// Where the content lies.
    pub placement: Placement,
}

/// Maps intensities to [0, 1] with the automatic window (0.5–99.5 percentile of non-zero
/// values), as the viewer shows them.
pub fn to_unit_range(values: &[f32]) -> Vec<f32> {
    let window = WindowLevel::auto(values);
    values.iter().map(|v| window.apply(*v)).collect()
}

/// Preprocesses a grey slice with values in [0, 1] (row-major, `width x height`) whose pixels
/// measure `pixel_spacing_mm` = (across, down).
pub fn preprocess_grey(
    values: &[f32],
    width: usize,
    height: usize,
    pixel_spacing_mm: [f64; 2],
    size: usize,
) -> ClipInput {
    let (placement, resized) = resize_into_square(values, width, height, pixel_spacing_mm, size);
    ClipInput { size, pixels: normalise_grey(&resized), placement }
}

/// The resizing half of [`preprocess_grey`]: the slice resized into the input square, grey
/// values still in [0, 1] (`normalise_grey` of it is `preprocess_grey`'s pixels, exactly), and
/// its placement. A quarter of the memory of the three normalised channels, for data held
/// across a training run.
pub fn resize_grey(values: &[f32], width: usize, height: usize, pixel_spacing_mm: [f64; 2], size: usize) -> (Placement, Vec<f32>) {
    resize_into_square(values, width, height, pixel_spacing_mm, size)
}

/// Preprocesses an image of `channels` planes (1: grey, replicated to RGB; 3: RGB), each
/// row-major `width x height` with values in [0, 1], stored one plane after the other.
/// Every plane is resized with the same placement.
pub fn preprocess_planes(
    planes: &[f32],
    channels: usize,
    width: usize,
    height: usize,
    pixel_spacing_mm: [f64; 2],
    size: usize,
) -> ClipInput {
    if channels != 3 {
        return preprocess_grey(&planes[..(width * height).min(planes.len())], width, height, pixel_spacing_mm, size);
    }
    let plane = width * height;
    let mut pixels = Vec::with_capacity(3 * size * size);
    let mut placement = None;
    for c in 0..3 {
        let (p, resized) = resize_into_square(&planes[c * plane..(c + 1) * plane], width, height, pixel_spacing_mm, size);
        placement = Some(p);
        pixels.extend(resized.iter().map(|v| (v - CLIP_MEAN[c]) / CLIP_STD[c]));
    }
    let placement = placement.unwrap_or(Placement { left: 0.0, top: 0.0, width: size as f64, height: size as f64 });
    ClipInput { size, pixels, placement }
}

/// The bilinear value of a row-major `width x height` image at (x, y) in pixel-centre
/// coordinates, clamped to the image.
pub fn bilinear_at(values: &[f32], width: usize, height: usize, x: f64, y: f64) -> f32 {
    let x = x.clamp(0.0, (width - 1) as f64);
    let y = y.clamp(0.0, (height - 1) as f64);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    let at = |x: usize, y: usize| values[y * width + x];
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// A slice's mask (`width x height`, non-zero = anomalous) carried into the input square with
/// nearest-neighbour sampling at `placement`; 0 in the padding. Values are 0.0 or 1.0.
pub fn preprocess_mask(mask: &[u8], width: usize, height: usize, placement: &Placement, size: usize) -> Vec<f32> {
    let mut out = vec![0f32; size * size];
    let (left, top) = (placement.left as usize, placement.top as usize);
    let (content_w, content_h) = (placement.width as usize, placement.height as usize);
    for y in 0..content_h.min(size - top.min(size)) {
        let row = (((y as f64 + 0.5) / placement.height * height as f64) as usize).min(height - 1);
        for x in 0..content_w.min(size - left.min(size)) {
            let column = (((x as f64 + 0.5) / placement.width * width as f64) as usize).min(width - 1);
            out[(top + y) * size + left + x] = f32::from(u8::from(mask[row * width + column] > 0));
        }
    }
    out
}

/// Grey values in [0, 1] (any layout) to CLIP's three normalised channels, channel-major, with
/// no resizing.
pub fn normalise_grey(values: &[f32]) -> Vec<f32> {
    let mut pixels = Vec::with_capacity(3 * values.len());
    for c in 0..3 {
        pixels.extend(values.iter().map(|v| (v - CLIP_MEAN[c]) / CLIP_STD[c]));
    }
    pixels
}

fn resize_into_square(
    values: &[f32],
    width: usize,
    height: usize,
    pixel_spacing_mm: [f64; 2],
    size: usize,
) -> (Placement, Vec<f32>) {
    let square_pixels = (pixel_spacing_mm[0] - pixel_spacing_mm[1]).abs() < 1e-9;
    if width == size && height == size && square_pixels {
        let placement = Placement { left: 0.0, top: 0.0, width: size as f64, height: size as f64 };
        return (placement, values.to_vec());
    }
    let (width_mm, height_mm) = (width as f64 * pixel_spacing_mm[0], height as f64 * pixel_spacing_mm[1]);
    let scale = size as f64 / width_mm.max(height_mm);
    let (content_w, content_h) = ((width_mm * scale).round().max(1.0), (height_mm * scale).round().max(1.0));
    let placement = Placement {
        left: ((size as f64 - content_w) / 2.0).floor(),
        top: ((size as f64 - content_h) / 2.0).floor(),
        width: content_w,
        height: content_h,
    };
    let mut out = vec![0f32; size * size];
    // Source coordinates of an output pixel centre (align_corners = False).
    let sample = |x: f64, y: f64| {
        bilinear_at(values, width, height, (x + 0.5) * width as f64 / content_w - 0.5, (y + 0.5) * height as f64 / content_h - 0.5)
    };
    let (left, top) = (placement.left as usize, placement.top as usize);
    for y in 0..content_h as usize {
        for x in 0..content_w as usize {
            out[(top + y) * size + left + x] = sample(x as f64, y as f64);
        }
    }
    (placement, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_at_input_size_is_only_normalised() {
        let values: Vec<f32> = (0..224 * 224).map(|i| (i % 97) as f32 / 96.0).collect();
        let input = preprocess_grey(&values, 224, 224, [1.0, 1.0], 224);
        assert_eq!(input.pixels.len(), 3 * 224 * 224);
        for c in 0..3 {
            for i in [0, 5000, 224 * 224 - 1] {
                let expected = (values[i] - CLIP_MEAN[c]) / CLIP_STD[c];
                assert_eq!(input.pixels[c * 224 * 224 + i], expected);
            }
        }
    }

    #[test]
    fn physical_aspect_is_kept_and_the_rest_is_black() {
        // 100 x 50 pixels of 1 mm x 4 mm: 100 mm wide, 200 mm tall -> 112 x 224 in the input.
        let values = vec![1.0f32; 100 * 50];
        let input = preprocess_grey(&values, 100, 50, [1.0, 4.0], 224);
        let p = input.placement;
        assert_eq!((p.width, p.height, p.left, p.top), (112.0, 224.0, 56.0, 0.0));
        let black = (0.0 - CLIP_MEAN[0]) / CLIP_STD[0];
        let white = (1.0 - CLIP_MEAN[0]) / CLIP_STD[0];
        assert_eq!(input.pixels[10], black, "padding left");
        assert_eq!(input.pixels[100 * 224 + 112], white, "content");
        assert_eq!(input.pixels[100 * 224 + 200], black, "padding right");
        // The slice's centre lands at the input's centre.
        let (x, y) = p.input_position(49.5, 24.5, 100, 50);
        assert!((x - 111.5).abs() < 1e-9 && (y - 111.5).abs() < 1e-9, "({x}, {y})");
    }

    #[test]
    fn rgb_planes_keep_their_colour_and_grey_is_replicated() {
        // 2 x 2 pure red next to pure blue: each channel normalised on its own.
        let (w, h) = (2, 1);
        let planes = [1.0, 0.0, /* g */ 0.0, 0.0, /* b */ 0.0, 1.0];
        let input = preprocess_planes(&planes, 3, w, h, [1.0, 1.0], 4);
        let at = |c: usize, x: usize, y: usize| input.pixels[c * 16 + y * 4 + x] * CLIP_STD[c] + CLIP_MEAN[c];
        // Content 4 x 2 at top 1: left half red, right half blue.
        assert!((at(0, 0, 1) - 1.0).abs() < 1e-6 && at(2, 0, 1).abs() < 1e-6, "red on the left");
        assert!((at(2, 3, 1) - 1.0).abs() < 1e-6 && at(0, 3, 1).abs() < 1e-6, "blue on the right");
        assert!(at(1, 1, 1).abs() < 1e-6, "no green anywhere");
        let grey = [0.25f32, 0.75];
        assert_eq!(preprocess_planes(&grey, 1, w, h, [1.0, 1.0], 4), preprocess_grey(&grey, w, h, [1.0, 1.0], 4));
    }

    #[test]
    fn bilinear_resize_reproduces_a_linear_ramp() {
        // A horizontal ramp stays a ramp (away from the clamped borders).
        let (w, h) = (64, 64);
        let values: Vec<f32> = (0..w * h).map(|i| (i % w) as f32 / (w - 1) as f32).collect();
        let input = preprocess_grey(&values, w, h, [1.0, 1.0], 224);
        let grey = |x: usize, y: usize| input.pixels[y * 224 + x] * CLIP_STD[0] + CLIP_MEAN[0];
        for x in 10..214 {
            let source = ((x as f64 + 0.5) * 64.0 / 224.0 - 0.5) / 63.0;
            assert!((f64::from(grey(x, 100)) - source).abs() < 1e-5, "x {x}");
        }
    }
}
