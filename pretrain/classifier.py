"""ImageNet fine-tuning model (ConvNeXt V2 paper §5.1): `ConvNeXtV2` with its pooled-norm-linear head, timm's
mixup/cutmix and soft-target losses, and the top-k accuracy the evaluator reports."""
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import METRICS, MODELS
from timm.data import Mixup
from timm.layers import trunc_normal_
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """`backbone` (a ConvNeXtV2 config with num_classes > 0) trained with label smoothing and, when mixup/cutmix
    is on, timm's batch `Mixup` + `SoftTargetCrossEntropy`, as the official main_finetune.py.

    Args:
        mixup: timm Mixup arguments (mixup_alpha, cutmix_alpha, prob, switch_prob, mode, ...); off when both
            alphas are 0 and there is no cutmix_minmax. Batches must be even (train dataloader drop_last=True).
        label_smoothing: ε of the smoothed targets (inside Mixup when mixing, else LabelSmoothingCrossEntropy).
        reinit_head: after loading a pretrained backbone (init_cfg Pretrained), draw the head afresh (trunc-normal
            .02 × head_init_scale, bias 0) even if the checkpoint held one, as official main_finetune.py --finetune.
    """

    def __init__(self, backbone: dict, mixup: dict | None = None, label_smoothing: float = 0.1,
                 reinit_head: bool = False, data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.reinit_head = reinit_head
        self.backbone = MODELS.build(backbone)  # attribute name fixed: --pretrained sets model.backbone.init_cfg
        self.num_classes = getattr(self.backbone, 'num_classes', 0)
        if self.num_classes <= 0:
            raise ValueError(f'ImageClassifier: backbone {backbone.get("type")} needs num_classes > 0 (a head); '
                             f'got {self.num_classes}')
        mixup = dict(mixup or {})
        active = mixup.get('mixup_alpha', 0) > 0 or mixup.get('cutmix_alpha', 0) > 0 or mixup.get('cutmix_minmax')
        self.mixup = Mixup(**mixup, label_smoothing=label_smoothing, num_classes=self.num_classes) if active else None
        if self.mixup is not None:
            self.criterion = SoftTargetCrossEntropy()  # smoothing is already in the mixed targets
        elif label_smoothing > 0:
            self.criterion = LabelSmoothingCrossEntropy(label_smoothing)
        else:
            self.criterion = nn.CrossEntropyLoss()

    def init_weights(self) -> None:
        """The backbone's init (its checkpoint load), then the head re-drawn when fine-tuning from a checkpoint."""
        super().init_weights()
        init = self.backbone.init_cfg if isinstance(self.backbone.init_cfg, dict) else {}
        if self.reinit_head and init.get('type') == 'Pretrained' and init.get('checkpoint'):
            head = self.backbone.head
            trunc_normal_(head.weight, std=.02)
            with torch.no_grad():
                head.weight.mul_(getattr(self.backbone, 'head_init_scale', 1.))
            nn.init.zeros_(head.bias)

    def forward(self, inputs: torch.Tensor | list, data_samples=None, mode: str = 'tensor'):
        """mode 'tensor': logits; 'loss': dict(loss=...); 'predict': one dict(pred_score, gt_label) per sample."""
        inputs = torch.stack(list(inputs)) if isinstance(inputs, (list, tuple)) else inputs  # pseudo_collate
        if mode == 'tensor':
            return self.backbone(inputs)
        if mode == 'loss':
            targets = torch.as_tensor(data_samples, device=inputs.device)
            if self.mixup is not None:
                inputs, targets = self.mixup(inputs, targets)
            # in float32 under any autocast: CUDA's autocast runs log_softmax in float32, the CPU's keeps bfloat16
            return dict(loss=self.criterion(self.backbone(inputs).float(), targets))
        if mode == 'predict':
            scores = self.backbone(inputs).float().softmax(dim=-1)
            labels = [None] * len(scores) if data_samples is None else torch.as_tensor(data_samples).tolist()
            return [dict(pred_score=s, gt_label=y) for s, y in zip(scores, labels)]
        raise ValueError(f'ImageClassifier.forward: mode={mode!r}, expected tensor, loss or predict')


@METRICS.register_module()
class TopKAccuracy(BaseMetric):
    """Top-k accuracy in percent (`accuracy/top1`, `accuracy/top5`); k is capped at the number of classes."""

    default_prefix = 'accuracy'

    def __init__(self, topk=(1, 5), collect_device: str = 'cpu', prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            score, label = sample['pred_score'], sample['gt_label']
            ranked = score.topk(min(max(self.topk), score.numel())).indices.tolist()
            self.results.append([label in ranked[:k] for k in self.topk])

    def compute_metrics(self, results: list) -> dict:
        hits = torch.tensor(results, dtype=torch.float64)
        return {f'top{k}': 100. * hits[:, i].mean().item() for i, k in enumerate(self.topk)}
