//! Training the learnable prompt and image adaptor on labelled (or synthetically lesioned)
//! volumes: data ([`dataset`], [`synth`]), losses ([`loss`]) and the loop ([`trainer`]).

pub mod dataset;
pub mod loss;
pub mod split;
pub mod synth;
pub mod trainer;
