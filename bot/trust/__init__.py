"""What every stage relies on to trust anything, each fact defined once."""
