//! The model side: CLIP in Burn (towers, tokenizer, checkpoints), device choice, slice
//! preprocessing, the learned prompt and image adaptor, the anomaly head, and slices to maps.

pub mod adaptor;
pub mod anomaly;
pub mod batch;
pub mod clip;
pub mod device;
pub mod display;
pub mod download;
pub mod head;
pub mod loader;
pub mod mapper;
pub mod preprocess;
pub mod prompt;
pub mod remote;
#[cfg(feature = "remote")]
pub mod remote_iroh;
pub mod trained;
pub mod weights;

/// A device-to-host read that failed (a lost GPU, a backend error).
#[derive(Debug, thiserror::Error)]
#[error("cannot read a tensor back from the device: {0}")]
pub struct HostReadError(pub String);

/// A tensor's values on the host as f32 (converted from its dtype). A failed read is an
/// error, never an empty vector that a later slice would panic on.
pub fn to_host<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<Vec<f32>, HostReadError> {
    let expected: usize = t.dims().iter().product();
    // try_: a remote device whose server went away answers with an error, not a panic.
    let data = t.try_into_data().map_err(|e| HostReadError(e.to_string().lines().map(str::trim).filter(|l| !l.is_empty() && *l != "Caused by:").collect::<Vec<_>>().join(": ")))?;
    let values = data.convert::<f32>().try_to_vec::<f32>().map_err(|e| HostReadError(format!("{e:?}")))?;
    if values.len() != expected {
        return Err(HostReadError(format!("{} values for a tensor of {expected}", values.len())));
    }
    Ok(values)
}
