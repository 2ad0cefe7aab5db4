// A view: black, with its slice image (its rectangle of the atlas) drawn at screen size, one
// texel per slice pixel. The expensive slice pass (3-D texture, colormap, labels, map) runs at the
// slice's own resolution and only when the view changes; every frame pays for this one
// opaque pass with one texture read per pixel.
//
// Built after shaders/quad.wgsl (the quad and `VertexOut`).

@group(0) @binding(0) var atlas: texture_2d<f32>;

struct Place {
    // The view's image in the atlas, in texels: x, y, width, height.
    atlas: vec4<f32>,
    // Where the image lies in the view, as fractions of it: left, top, right, bottom.
    image: vec4<f32>,
};

@group(0) @binding(1) var<uniform> place: Place;

// The view's colour at `uv` (fractions of the view): the slice where it lies, else black.
fn view_colour(uv: vec2<f32>) -> vec4<f32> {
    let local = (uv - place.image.xy) / (place.image.zw - place.image.xy);
    let inside = all(local >= vec2<f32>(0.0)) && all(local < vec2<f32>(1.0));
    // The pixel under `uv`, exactly as the slice pass numbers them.
    let size = vec2<i32>(place.atlas.zw);
    let pixel = clamp(vec2<i32>(floor(local * place.atlas.zw)), vec2<i32>(0, 0), size - vec2<i32>(1, 1));
    let loaded = textureLoad(atlas, vec2<i32>(place.atlas.xy) + pixel, 0);
    return select(vec4<f32>(0.0, 0.0, 0.0, 1.0), loaded, inside);
}

// For a target that stores gamma-encoded values as they are (egui's usual framebuffer).
@fragment
fn fs_gamma(in: VertexOut) -> @location(0) vec4<f32> {
    return view_colour(in.uv);
}

// For an sRGB target, which encodes what it is given: hand it linear values.
@fragment
fn fs_linear(in: VertexOut) -> @location(0) vec4<f32> {
    let c = view_colour(in.uv);
    let low = c.rgb / 12.92;
    let high = pow((c.rgb + 0.055) / 1.055, vec3<f32>(2.4));
    return vec4<f32>(select(high, low, c.rgb <= vec3<f32>(0.04045)), c.a);
}
