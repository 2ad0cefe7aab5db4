// The 3-D view: a maximum-intensity projection of the volume, orthographic rays from the
// camera of crates/cue-render/src/orbit.rs, with the anomaly scores (highest along the ray) or
// the findings (first one met) on top. The same rays, steps and composite as `render_mip_cpu`
// there, which the tests compare this with.
//
// Built after shaders/quad.wgsl (the quad and `VertexOut`). Keep the parameters in step with
// `VolumeDraw::params` in crates/cue-render/src/volume3d.rs.

// The parameters, eight RGBA texels of a 32-bit float texture (row 0), in this order:
//   0 base:   the start of pixel (0, 0)'s ray, continuous voxel coordinates (w unused);
//   1 across: the start's step per pixel to the right;  2 down: per pixel down;
//   3 step:   one step along the rays;
//   4 shape:  the volume's shape, and the steps across its bounding sphere;
//   5 image:  width, height, overlay (0 none, 1 scores, 2 findings), colormap row;
//   6 window: window low and width, score threshold, score low;  7 score: score high.
// A texture, not a uniform buffer: Mesa's lavapipe compiles a new shader variant for each new
// value of uniforms that loop bounds depend on (uniform inlining), which made every new camera
// angle a 150 ms shader compile; storage buffers would avoid it too but are not available to
// fragment shaders on GL.
@group(0) @binding(0) var params: texture_2d<f32>;

struct Uniforms {
    base: vec4<f32>,
    across: vec4<f32>,
    down: vec4<f32>,
    step: vec4<f32>,
    shape: vec4<i32>,
    image: vec4<i32>,
    window: vec4<f32>,
    score: vec4<f32>,
};

fn load_params() -> Uniforms {
    var u: Uniforms;
    u.base = textureLoad(params, vec2<i32>(0, 0), 0);
    u.across = textureLoad(params, vec2<i32>(1, 0), 0);
    u.down = textureLoad(params, vec2<i32>(2, 0), 0);
    u.step = textureLoad(params, vec2<i32>(3, 0), 0);
    u.shape = vec4<i32>(round(textureLoad(params, vec2<i32>(4, 0), 0)));
    u.image = vec4<i32>(round(textureLoad(params, vec2<i32>(5, 0), 0)));
    u.window = textureLoad(params, vec2<i32>(6, 0), 0);
    u.score = textureLoad(params, vec2<i32>(7, 0), 0);
    return u;
}

@group(0) @binding(1) var intensities: texture_3d<f32>;
@group(0) @binding(2) var scores: texture_3d<f32>;
@group(0) @binding(3) var labels: texture_3d<f32>;
@group(0) @binding(4) var colormaps: texture_2d<f32>;

fn finding_colour(label: i32) -> vec3<f32> {
    switch ((max(label, 1) - 1) % 8) {
        case 0: { return vec3<f32>(0.0, 0.85, 0.95); }
        case 1: { return vec3<f32>(0.95, 0.35, 0.85); }
        case 2: { return vec3<f32>(0.35, 0.95, 0.35); }
        case 3: { return vec3<f32>(0.98, 0.65, 0.15); }
        case 4: { return vec3<f32>(0.45, 0.55, 1.0); }
        case 5: { return vec3<f32>(1.0, 0.35, 0.35); }
        case 6: { return vec3<f32>(0.95, 0.95, 0.35); }
        default: { return vec3<f32>(0.6, 0.95, 0.85); }
    }
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let u = load_params();
    let pixel = clamp(vec2<i32>(floor(in.uv * vec2<f32>(u.image.xy))), vec2<i32>(0, 0), u.image.xy - vec2<i32>(1, 1));
    let origin = u.base.xyz + f32(pixel.x) * u.across.xyz + f32(pixel.y) * u.down.xyz;
    let n = vec3<f32>(u.shape.xyz);
    // The steps inside the box [0, shape), as Rays::inside.
    var low = 0.0;
    var high = f32(u.shape.w);
    var missed = false;
    for (var a = 0; a < 3; a++) {
        let o = origin[a];
        let d = u.step[a];
        if (abs(d) < 1e-12) {
            if (o < 0.0 || o >= n[a]) { missed = true; }
        } else {
            let t0 = (0.0 - o) / d;
            let t1 = (n[a] - o) / d;
            low = max(low, min(t0, t1));
            high = min(high, max(t0, t1));
        }
    }
    var first = 0u;
    var last = 0u;
    if (!missed && high > low) {
        first = u32(ceil(max(low, 0.0)));
        last = min(u32(floor(high)) + 1u, u32(u.shape.w));
    }
    var brightest = -3.0e38;
    var top_score = -3.0e38;
    var hit = 0;
    var depth = 0.0;
    let top = vec3<i32>(u.shape.xyz) - vec3<i32>(1, 1, 1);
    for (var t = first; t < last; t++) {
        let q = origin + (f32(t) + 0.5) * u.step.xyz;
        let v = clamp(vec3<i32>(floor(max(q, vec3<f32>(0.0)))), vec3<i32>(0, 0, 0), top);
        brightest = max(brightest, textureLoad(intensities, v, 0).r);
        if (u.image.z == 1) {
            top_score = max(top_score, textureLoad(scores, v, 0).r);
        } else if (u.image.z == 2 && hit == 0) {
            let l = i32(round(textureLoad(labels, v, 0).r));
            if (l != 0) {
                hit = l;
                depth = f32(t - first) / f32(max(last - first, 1u));
            }
        }
    }
    var grey = 0.0;
    if (last > first) {
        grey = clamp((brightest - u.window.x) / max(u.window.y, 1e-20), 0.0, 1.0);
    }
    var rgb = vec3<f32>(grey);
    if (u.image.z == 1 && top_score >= u.window.z) {
        let t = clamp((top_score - u.window.w) / max(u.score.x - u.window.w, 1e-20), 0.0, 1.0);
        let heat = textureLoad(colormaps, vec2<i32>(i32(round(t * 255.0)), u.image.w), 0).rgb;
        rgb = 0.4 * vec3<f32>(grey) + 0.6 * heat;
    }
    if (hit != 0) {
        rgb = 0.3 * vec3<f32>(grey) + 0.7 * finding_colour(hit) * (1.0 - 0.5 * depth);
    }
    return vec4<f32>(clamp(rgb, vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}
