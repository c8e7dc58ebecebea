"""Mask R-CNN's RPN head and RoI extractor for any autocast dtype: mmcv 2.1.0's kernels take fewer dtypes than
autocast produces, so the inputs of those two ops are cast where they are called, and nowhere else.
  - nms (mmcv/ops/csrc/pytorch/cpu/nms.cpp, cuda/nms_cuda.cu): boxes (and scores on the CPU) as float32 only, on
    every device; the RPN's proposals are detached, so the cast costs no gradient.
  - RoIAlign (cpu/roi_align.cpp, cuda/roi_align_cuda.cu): float32/64 and float16, not bfloat16; features in
    bfloat16 are pooled in float32 (the gradient flows back through the cast), float16 stays as mmdet runs it.
Imported by the detection configs (custom_imports), so `runtime` itself does not depend on mmdet; registered in
mmengine's root MODELS, which mmdet's registry reads."""
from typing import Optional

import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmengine.registry import MODELS

ROI_ALIGN_DTYPES = (torch.float32, torch.float64, torch.float16)  # AT_DISPATCH_FLOATING_TYPES_AND_HALF, both devices


class AmpRPNHead(RPNHead):
    """mmdet's RPNHead whose proposal nms gets float32 boxes and scores whatever dtype autocast gave the head."""

    def _bbox_post_process(self, results, cfg, rescale: bool = False, with_nms: bool = True,
                           img_meta: Optional[dict] = None):
        # .to: a tensor, or mmdet's box types (which have no .float)
        results.bboxes, results.scores = results.bboxes.to(torch.float32), results.scores.float()
        return super()._bbox_post_process(results, cfg, rescale=rescale, with_nms=with_nms, img_meta=img_meta)


class AmpSingleRoIExtractor(SingleRoIExtractor):
    """mmdet's SingleRoIExtractor that pools features of a dtype mmcv's RoIAlign lacks (bfloat16) in float32."""

    def forward(self, feats, rois, roi_scale_factor: Optional[float] = None):
        if feats[0].dtype not in ROI_ALIGN_DTYPES:
            feats = tuple(f.float() for f in feats)
        return super().forward(feats, rois, roi_scale_factor)


MODELS.register_module(module=AmpRPNHead)
MODELS.register_module(module=AmpSingleRoIExtractor)
