//! The knowledge base: versioned articles with a reviewed lifecycle ([`store`]), Chinese
//! search over the published versions ([`index`], [`text`]), and the policy that turns
//! search hits into a kiosk answer, a clarifying question or an honest "I don't know".

pub mod index;
pub mod model;
pub mod text;
