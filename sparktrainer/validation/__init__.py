"""Job validation: the public door's decoding and every check of the guide."""
