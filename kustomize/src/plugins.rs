//! Builtin generator and transformer config kinds listed under `generators` / `transformers`.
