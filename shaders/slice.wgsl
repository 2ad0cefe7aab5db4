// One slice of a volume held as a 3-D texture: window/level, colormap, an optional label
// overlay and an optional RGBA overlay (the anomaly map), all per fragment in one pass, so
// stepping slices or changing the window uploads nothing but these uniforms.
//
// Built after shaders/quad.wgsl (the quad and `VertexOut`). Keep `Uniforms` in step with
// `SliceDraw::uniform_bytes` in crates/cue-render/src/slice.rs, and colormap rows with `Colormap`.

struct Uniforms {
    // Voxel of the top-left pixel, and the voxel step per column and per row (x, y, z, unused).
    base: vec4<i32>,
    column_step: vec4<i32>,
    row_step: vec4<i32>,
    // Slice width and height in pixels; whether a label volume is bound; 1 = outline, 0 = fill.
    size: vec4<i32>,
    // Window low, window width, colormap row, label opacity.
    window: vec4<f32>,
    // Whether an overlay is bound (1) at the slice's size; whether the volume's colours are
    // bound (1: shown as stored, no window or colormap); unused.
    overlay: vec4<i32>,
};

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var intensities: texture_3d<f32>;
@group(0) @binding(2) var labels: texture_3d<f32>;
@group(0) @binding(3) var colormaps: texture_2d<f32>;
// Premultiplied RGBA over the slice, one texel per pixel (the anomaly map).
@group(0) @binding(4) var overlay: texture_2d<f32>;
// A colour volume's RGB (RGBA8, alpha unused), or a 1x1x1 stand-in.
@group(0) @binding(5) var colours: texture_3d<f32>;

fn voxel_of(pixel: vec2<i32>) -> vec3<i32> {
    return u.base.xyz + pixel.x * u.column_step.xyz + pixel.y * u.row_step.xyz;
}

fn label_at(pixel: vec2<i32>) -> f32 {
    let p = clamp(pixel, vec2<i32>(0, 0), u.size.xy - vec2<i32>(1, 1));
    return textureLoad(labels, voxel_of(p), 0).r;
}

// BraTS colours for labels 1-3 (necrosis red, oedema green, enhancing yellow), then a cycle.
fn label_colour(label: f32) -> vec3<f32> {
    let l = i32(round(label));
    switch (l % 8) {
        case 1: { return vec3<f32>(0.90, 0.16, 0.16); }
        case 2: { return vec3<f32>(0.20, 0.80, 0.25); }
        case 3: { return vec3<f32>(0.98, 0.85, 0.15); }
        case 4: { return vec3<f32>(0.20, 0.45, 0.95); }
        case 5: { return vec3<f32>(0.85, 0.30, 0.85); }
        case 6: { return vec3<f32>(0.15, 0.85, 0.85); }
        case 7: { return vec3<f32>(0.95, 0.55, 0.15); }
        default: { return vec3<f32>(0.75, 0.75, 0.75); }
    }
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let pixel = clamp(vec2<i32>(floor(in.uv * vec2<f32>(u.size.xy))), vec2<i32>(0, 0), u.size.xy - vec2<i32>(1, 1));
    let value = textureLoad(intensities, voxel_of(pixel), 0).r;
    let t = clamp((value - u.window.x) / max(u.window.y, 1e-20), 0.0, 1.0);
    let row = i32(u.window.z);
    var colour = textureLoad(colormaps, vec2<i32>(i32(round(t * 255.0)), row), 0).rgb;
    if (u.overlay.y == 1) {
        colour = textureLoad(colours, voxel_of(pixel), 0).rgb;
    }
    if (u.size.z == 1) {
        let label = label_at(pixel);
        var show = label > 0.0;
        if (u.size.w == 1 && show) {
            // Outline: a labelled pixel with a differently labelled 4-neighbour.
            show = label_at(pixel + vec2<i32>(1, 0)) != label || label_at(pixel - vec2<i32>(1, 0)) != label
                || label_at(pixel + vec2<i32>(0, 1)) != label || label_at(pixel - vec2<i32>(0, 1)) != label;
        }
        if (show) {
            colour = mix(colour, label_colour(label), u.window.w);
        }
    }
    if (u.overlay.x == 1) {
        // Blended as egui blends images: premultiplied, in gamma space.
        let over = textureLoad(overlay, pixel, 0);
        colour = over.rgb + colour * (1.0 - over.a);
    }
    return vec4<f32>(colour, 1.0);
}
