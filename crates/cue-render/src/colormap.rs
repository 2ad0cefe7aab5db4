//! Colormaps, as lookup-table rows of one texture.

/// A colormap for intensities and heat-maps.
///
/// `#[repr(u32)]`: the value is the row of the lookup texture the shader reads
/// (`shaders/slice.wgsl`); keep [`Colormap::ALL`] in that order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u32)]
pub enum Colormap {
    /// Black to white.
    #[default]
    Gray = 0,
    /// Perceptually uniform black-red-yellow.
    Inferno = 1,
    /// Rainbow-like, for heat-maps.
    Turbo = 2,
    /// Perceptually uniform blue-green-yellow.
    Viridis = 3,
    /// Perceptually uniform black-purple-white.
    Magma = 4,
    /// Perceptually uniform blue-purple-yellow.
    Plasma = 5,
}

/// Entries per lookup table.
pub const LUT_SIZE: usize = 256;

impl Colormap {
    /// Every colormap, in lookup-texture row order.
    pub const ALL: [Colormap; 6] =
        [Self::Gray, Self::Inferno, Self::Turbo, Self::Viridis, Self::Magma, Self::Plasma];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gray => "gray",
            Self::Inferno => "inferno",
            Self::Turbo => "turbo",
            Self::Viridis => "viridis",
            Self::Magma => "magma",
            Self::Plasma => "plasma",
        }
    }

    /// The colour at `t` in [0, 1].
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let t = f64::from(t.clamp(0.0, 1.0));
        let gradient = match self {
            Self::Gray => {
                let v = (t * 255.0).round() as u8;
                return [v, v, v];
            }
            Self::Inferno => colorous::INFERNO,
            Self::Turbo => colorous::TURBO,
            Self::Viridis => colorous::VIRIDIS,
            Self::Magma => colorous::MAGMA,
            Self::Plasma => colorous::PLASMA,
        };
        let c = gradient.eval_continuous(t);
        [c.r, c.g, c.b]
    }

    /// RGBA8 lookup rows of every colormap, `LUT_SIZE` entries each.
    pub fn lookup_texture_bytes() -> Vec<u8> {
        let mut bytes = Vec::with_capacity(Self::ALL.len() * LUT_SIZE * 4);
        for colormap in Self::ALL {
            for i in 0..LUT_SIZE {
                let [r, g, b] = colormap.rgb(i as f32 / (LUT_SIZE - 1) as f32);
                bytes.extend([r, g, b, 255]);
            }
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_enum_values() {
        for (row, colormap) in Colormap::ALL.iter().enumerate() {
            assert_eq!(*colormap as usize, row);
        }
        let lut = Colormap::lookup_texture_bytes();
        assert_eq!(lut.len(), 6 * 256 * 4);
        // Gray ends black and white; inferno starts near black and ends pale yellow.
        assert_eq!(&lut[..4], &[0, 0, 0, 255]);
        assert_eq!(&lut[255 * 4..256 * 4], &[255, 255, 255, 255]);
        let inferno_end = &lut[(256 + 255) * 4..(256 + 256) * 4];
        assert!(inferno_end[0] > 200 && inferno_end[1] > 200 && inferno_end[2] < 200, "{inferno_end:?}");
    }
}
