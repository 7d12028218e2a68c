"""The landing zone: the raw-input contract, its snapshot into the warehouse, file encodings."""
