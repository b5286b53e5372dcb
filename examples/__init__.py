"""Examples on real data: each folder holds a params file, its starting suite and any code of its own."""
