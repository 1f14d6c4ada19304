//! Output order: kustomize's legacy kind order, or the order resources were read (fifo).
