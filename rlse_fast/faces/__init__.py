"""Faces in whole photos: detect (MTCNN), align to the generator's frame, paste back; `pipeline.restore_photo`
runs them around the super-resolution engine (`rlse-fast photo`); `fit` makes any crop a valid `sr` input."""
