//! Projectors: fold the published log into read models.
