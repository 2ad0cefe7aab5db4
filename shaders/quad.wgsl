// The quad both slice shaders draw, prepended to each when the module is built (WGSL has no
// includes): four vertices as a triangle strip over the whole viewport, which the caller sets
// to the target rectangle (a view's place in the atlas, or the view on screen); `uv` runs from
// (0, 0) at the top left to (1, 1) at the bottom right.

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    let uv = vec2<f32>(f32(index & 1u), f32((index >> 1u) & 1u));
    var out: VertexOut;
    out.position = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    return out;
}
