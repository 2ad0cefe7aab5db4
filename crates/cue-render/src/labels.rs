//! Label maps over slices on the CPU: the same colours, fill and outline rule as the slice
//! shader, for the path that draws slices without wgpu.

use super::slice::LabelStyle;

/// Colours (sRGB 0-1) of labels 1-7 and the default for others, by `label % 8`: BraTS
/// necrosis red, oedema green, enhancing yellow, then a cycle. Keep in step with
/// `label_colour` in `shaders/slice.wgsl` (a test compares them).
pub const LABEL_COLOURS: [[f32; 3]; 8] = [
    [0.75, 0.75, 0.75],
    [0.90, 0.16, 0.16],
    [0.20, 0.80, 0.25],
    [0.98, 0.85, 0.15],
    [0.20, 0.45, 0.95],
    [0.85, 0.30, 0.85],
    [0.15, 0.85, 0.85],
    [0.95, 0.55, 0.15],
];

/// The colour of a label value.
pub fn label_colour(label: f32) -> [f32; 3] {
    LABEL_COLOURS[(label.round() as i64).rem_euclid(8) as usize]
}

/// Blends `labels` (one value per pixel, row by row, `width` wide) over `rgb` as the slice
/// shader does: labelled pixels, or with [`LabelStyle::Outline`] only those with a
/// differently labelled 4-neighbour (the slice's edge repeats outwards), mixed towards the
/// label's colour by `opacity`.
pub fn paint_labels(rgb: &mut [[u8; 3]], labels: &[f32], width: usize, style: LabelStyle, opacity: f32) {
    if width == 0 || labels.len() != rgb.len() {
        return;
    }
    let height = labels.len() / width;
    let at = |column: isize, row: isize| {
        let c = column.clamp(0, width as isize - 1) as usize;
        let r = row.clamp(0, height as isize - 1) as usize;
        labels[c + width * r]
    };
    for row in 0..height {
        for column in 0..width {
            let label = labels[column + width * row];
            let mut show = label > 0.0;
            if show && style == LabelStyle::Outline {
                let (c, r) = (column as isize, row as isize);
                show = at(c + 1, r) != label || at(c - 1, r) != label || at(c, r + 1) != label || at(c, r - 1) != label;
            }
            if show {
                let pixel = &mut rgb[column + width * row];
                let colour = label_colour(label);
                for (channel, target) in pixel.iter_mut().zip(colour) {
                    let mixed = f32::from(*channel) / 255.0 * (1.0 - opacity) + target * opacity;
                    *channel = (mixed * 255.0).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_palette_is_the_shader_s() {
        let shader = include_str!("../../../shaders/slice.wgsl");
        let body = &shader[shader.find("fn label_colour").expect("label_colour in the shader")..];
        let body = &body[..body.find("\n}").expect("end of label_colour")];
        let colour_of = |line: &str| -> [f32; 3] {
            let inner = &line[line.find("vec3<f32>(").expect("a colour") + 10..line.rfind(')').expect("a colour")];
            let values: Vec<f32> = inner.split(',').map(|v| v.trim().trim_end_matches(')').parse().expect("a number")).collect();
            [values[0], values[1], values[2]]
        };
        let lines: Vec<&str> = body.lines().filter(|l| l.contains("vec3<f32>(")).collect();
        assert_eq!(lines.len(), LABEL_COLOURS.len(), "one colour per case");
        for line in lines {
            let line = line.trim();
            let case = if line.starts_with("default") { 0 } else { line["case ".len()..line.find(':').expect("case")].parse::<usize>().expect("case number") };
            assert_eq!(colour_of(line), LABEL_COLOURS[case], "label {case}");
        }
        assert_eq!(label_colour(9.0), LABEL_COLOURS[1]);
        assert_eq!(label_colour(0.0), LABEL_COLOURS[0]);
    }

    #[test]
    fn fill_mixes_labelled_pixels_and_outline_keeps_only_boundaries() {
        // A 5x5 slice with a 3x3 block of label 2 in the middle.
        let width = 5;
        let labels: Vec<f32> = (0..25).map(|i| if (1..4).contains(&(i % 5)) && (1..4).contains(&(i / 5)) { 2.0 } else { 0.0 }).collect();
        let grey = [[100u8; 3]; 25];

        let mut filled = grey;
        paint_labels(&mut filled, &labels, width, LabelStyle::Filled, 0.5);
        let green = [(100.0 / 255.0 * 0.5 + 0.20 * 0.5), (100.0 / 255.0 * 0.5 + 0.80 * 0.5), (100.0 / 255.0 * 0.5 + 0.25 * 0.5)]
            .map(|v: f32| (v * 255.0).round() as u8);
        for i in 0..25 {
            assert_eq!(filled[i], if labels[i] > 0.0 { green } else { [100; 3] }, "pixel {i}");
        }

        let mut outline = grey;
        paint_labels(&mut outline, &labels, width, LabelStyle::Outline, 0.5);
        assert_eq!(outline[12], [100; 3], "the centre has only label-2 neighbours");
        for i in [6, 7, 8, 11, 13, 16, 17, 18] {
            assert_eq!(outline[i], green, "boundary pixel {i}");
        }
        assert_eq!(outline[0], [100; 3]);
    }
}
