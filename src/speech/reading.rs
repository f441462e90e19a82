//! Text normalisation for reading aloud.
