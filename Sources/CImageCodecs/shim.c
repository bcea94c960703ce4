// Placeholder: the decode shims live here.
