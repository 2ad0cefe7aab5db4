//! ROC curves as PNG files (no plotting library: axes, a grid, the chance diagonal and one
//! coloured polyline per curve, with a small legend of colour swatches (bottom right, in curve order) whose meaning
//! the Markdown that shows the file states).

use std::path::Path;

use image::{Rgb, RgbImage};

/// Side of the plot in pixels.
const SIZE: u32 = 480;
/// Margin around the axes.
const MARGIN: u32 = 40;

/// Curve colours, in legend order (tab10's first five).
pub const COLOURS: [[u8; 3]; 5] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189]];

fn to_pixel(x: f64, y: f64) -> (f64, f64) {
    let span = f64::from(SIZE - 2 * MARGIN);
    (f64::from(MARGIN) + x.clamp(0.0, 1.0) * span, f64::from(SIZE - MARGIN) - y.clamp(0.0, 1.0) * span)
}

fn line(image: &mut RgbImage, from: (f64, f64), to: (f64, f64), colour: [u8; 3], width: i32) {
    let steps = ((to.0 - from.0).abs().max((to.1 - from.1).abs()).ceil() as usize).max(1);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (from.0 + t * (to.0 - from.0), from.1 + t * (to.1 - from.1));
        for dx in -(width / 2)..=(width / 2) {
            for dy in -(width / 2)..=(width / 2) {
                let (px, py) = (x.round() as i64 + i64::from(dx), y.round() as i64 + i64::from(dy));
                if px >= 0 && py >= 0 && px < i64::from(SIZE) && py < i64::from(SIZE) {
                    image.put_pixel(px as u32, py as u32, Rgb(colour));
                }
            }
        }
    }
}

/// Draws ROC curves ((FPR, TPR) points from (0, 0) to (1, 1)), curve `i` in `COLOURS[i % 5]`,
/// and writes the PNG atomically (temporary file, then rename).
pub fn write_roc_png(path: &Path, curves: &[Vec<[f64; 2]>]) -> Result<(), String> {
    let mut image = RgbImage::from_pixel(SIZE, SIZE, Rgb([255, 255, 255]));
    let grey = [220, 220, 220];
    for tick in 1..10 {
        let t = f64::from(tick) / 10.0;
        line(&mut image, to_pixel(t, 0.0), to_pixel(t, 1.0), grey, 1);
        line(&mut image, to_pixel(0.0, t), to_pixel(1.0, t), grey, 1);
    }
    line(&mut image, to_pixel(0.0, 0.0), to_pixel(1.0, 1.0), [150, 150, 150], 1);
    let black = [0, 0, 0];
    line(&mut image, to_pixel(0.0, 0.0), to_pixel(1.0, 0.0), black, 1);
    line(&mut image, to_pixel(0.0, 0.0), to_pixel(0.0, 1.0), black, 1);
    line(&mut image, to_pixel(1.0, 0.0), to_pixel(1.0, 1.0), black, 1);
    line(&mut image, to_pixel(0.0, 1.0), to_pixel(1.0, 1.0), black, 1);
    for (i, curve) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for pair in curve.windows(2) {
            line(&mut image, to_pixel(pair[0][0], pair[0][1]), to_pixel(pair[1][0], pair[1][1]), colour, 3);
        }
        // Legend swatch, bottom right inside the axes (where ROC curves do not go), in order.
        let (x, y) = (SIZE - MARGIN - 40, SIZE - MARGIN - 20 - 16 * (curves.len() - 1 - i) as u32);
        for dx in 0..24 {
            for dy in 0..8 {
                image.put_pixel(x + dx, y + dy, Rgb(colour));
            }
        }
    }
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).map_err(|e| format!("cannot encode {} ({e})", path.display()))?;
    cue_volume::write_file_atomically(path, png.get_ref()).map_err(|e| format!("cannot write {} ({e})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_drawn_in_their_colours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roc.png");
        write_roc_png(&path, &[vec![[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]], vec![[0.0, 0.0], [1.0, 1.0]]]).unwrap();
        let image = image::open(&path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (SIZE, SIZE));
        // The first curve climbs the left edge: its colour is there half way up.
        let (x, y) = to_pixel(0.0, 0.5);
        assert_eq!(image.get_pixel(x as u32 + 1, y as u32).0, COLOURS[0]);
        let (x, y) = to_pixel(0.5, 0.5);
        assert_eq!(image.get_pixel(x as u32, y as u32).0, COLOURS[1]);
    }
}
