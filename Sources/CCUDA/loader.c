// Placeholder: the dlopen loader lives here.
