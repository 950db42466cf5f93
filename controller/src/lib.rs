//! Pylon's controller: watch → snapshot → translate → status / provision / serve config.
#![forbid(unsafe_code)]
