"""Stage 3 tables (echo_pipeline/masking; docs/masking.md): sector masks, quarantine, masked clips."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import CODE_VERSION, RUN_ID

SECTOR_MASKS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),  # the DICOM file the mask was found in
        pa.field("shard", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),  # regions | regions_pixels | pixels
        pa.field("mask_path", pa.string(), nullable=False),  # PNG (0 / 255, source size), relative to the data root
        pa.field("rows", pa.int32(), nullable=False),  # source frame size (the mask's size)
        pa.field("columns", pa.int32(), nullable=False),
        pa.field("area_fraction", pa.float64(), nullable=False),  # mask pixels / image pixels
        pa.field("bbox_x0", pa.int32(), nullable=False),  # inclusive bounds of the mask, source pixels
        pa.field("bbox_y0", pa.int32(), nullable=False),
        pa.field("bbox_x1", pa.int32(), nullable=False),
        pa.field("bbox_y1", pa.int32(), nullable=False),
        pa.field("apex_x", pa.float64(), nullable=False),  # the fitted fan (echo_pipeline.masking.geometry.Fan)
        pa.field("apex_y", pa.float64(), nullable=False),
        pa.field("radius", pa.float64(), nullable=False),
        pa.field("min_radius", pa.float64(), nullable=False),  # near arc of a truncated fan; 0 when pointed
        pa.field("angle_left_deg", pa.float64(), nullable=False),
        pa.field("angle_right_deg", pa.float64(), nullable=False),
        pa.field("fit_iou", pa.float64(), nullable=False),  # IoU(mask, convex blob of the moving pixels inside it)
        pa.field("outside_fraction", pa.float64(), nullable=False),  # share of moving pixels outside the mask
        pa.field("angular_coverage", pa.float64(), nullable=False),  # least moving share over 12 slices of the fan
        pa.field("has_regions", pa.bool_(), nullable=False),  # the file has a 2D SequenceOfUltrasoundRegions box
        pa.field("regions_pixels_iou", pa.float64()),  # IoU(regions mask, pixels mask) when both exist
        pa.field("frames_sampled", pa.int32(), nullable=False),
        pa.field("analysis_scale", pa.int32(), nullable=False),  # frames analysed at 1/scale (large frames)
        RUN_ID,
        CODE_VERSION,
    ]
)

MASK_QUARANTINE = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # one of echo_pipeline.masking.plausibility.REASONS
        pa.field("message", pa.string(), nullable=False),
        pa.field("method", pa.string()),  # the method whose sector was judged, when one was found
        pa.field("area_fraction", pa.float64()),
        RUN_ID,
        CODE_VERSION,
    ]
)

MASKED_CLIPS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("clip_path", pa.string(), nullable=False),  # .npy uint8 (T, H, W, 3) RGB, relative to the data root
        pa.field("clip_format", pa.string(), nullable=False),  # npy (echo_pipeline.masking.clip_store)
        pa.field("frames", pa.int32(), nullable=False),  # every frame of the source clip
        pa.field("frame_rate", pa.float64()),  # frames per second, from dicom_instances
        pa.field("height", pa.int32(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("mask_method", pa.string(), nullable=False),  # sector_masks.method
        pa.field("decode_scale", pa.int32(), nullable=False),  # 1, 2, 4 or 8: JPEG frames decoded reduced
        pa.field("crop_x0", pa.int32(), nullable=False),  # the bounding square, source pixels (may leave the image)
        pa.field("crop_y0", pa.int32(), nullable=False),
        pa.field("crop_side", pa.int32(), nullable=False),
        pa.field("kept_fraction", pa.float64(), nullable=False),  # output pixels inside the mask
        RUN_ID,
        CODE_VERSION,
    ]
)
