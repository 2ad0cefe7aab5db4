//! Training the learnable prompt and image adaptor on labelled (or synthetically lesioned)
//! volumes: data ([`dataset`], [`synth`], the patient [`split`]), losses ([`loss`]) and the loop
//! ([`trainer`], over prepared slices and cached features).

mod config;
pub mod dataset;
mod features;
mod parallel;
pub mod loss;
pub mod split;
pub mod synth;
pub mod trainer;
