//! `patches`, `patchesStrategicMerge` and `patchesJson6902`.
