//! The method around the model: training the learnable prompt and image adaptor
//! ([`train`]), measuring it per sequence and view ([`eval`]), and the whole protocol in one
//! run ([`reproduce`], with its ROC plots from [`plot`]). No UI.

pub mod eval;
pub mod plot;
pub mod reproduce;
pub mod train;
