"""MLP projections between feature spaces.

- GLaMM ``mm_projector`` (vision -> LLM): Linear-GELU-Linear, 1024->4096->4096.
- GLaMM ``text_hidden_fcs`` ([SEG] state -> SAM prompt):
  Linear-ReLU-Linear-Dropout(0), 4096->4096->256.
- LLaVA-G ``mm_projector``: a single Linear (``num_layers=1``).

The linear layers sit in ``layers`` at the indices of the official
``nn.Sequential`` (0, 2, ...) so checkpoint keys map one to one
(``mm_projector.0.weight`` -> ``layers.0.weight``).
"""
from typing import Optional, Union

from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn import functional as F

from mmgrounding.registry import MODELS

_NORM_ALIASES = {'BN1d': 'BN1d', 'BN': 'BN1d', 'LN': 'LN'}


@MODELS.register_module()
class MLPProjector(BaseModule):
    """Stack of Linear layers with an activation between them.

    Args:
        in_channels: input feature size.
        out_channels: output feature size.
        hidden_channels: width of hidden layers (default: ``out_channels``,
            as in GLaMM's projectors).
        num_layers: number of Linear layers (1 = a single Linear).
        act: activation between Linear layers: a name (``'GELU'``,
            ``'ReLU'``) or an mmcv activation config.
        norm: optional normalisation of the INPUT features, applied before
            the first Linear: ``'BN1d'`` (statistics over all leading dims,
            i.e. across the batch of tokens; found to keep [SEG] prompts
            distinguishable in tiny models), ``'LN'`` or an mmcv norm config.
        dropout: probability of the Dropout appended after the last Linear
            (GLaMM's ``text_hidden_fcs`` ends with Dropout(0)).
        trainable: False freezes every parameter (GLaMM's ``mm_projector``
            with LoRA).
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 hidden_channels: Optional[int] = None,
                 num_layers: int = 2,
                 act: Union[str, dict] = 'GELU',
                 norm: Union[str, dict, None] = None,
                 dropout: float = 0.,
                 trainable: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        hidden_channels = hidden_channels or out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        act_cfg = dict(type=act) if isinstance(act, str) else dict(act)

        self.norm = None
        if norm is not None:
            norm_cfg = dict(type=norm) if isinstance(norm, str) else dict(norm)
            norm_cfg['type'] = _NORM_ALIASES.get(norm_cfg['type'],
                                                 norm_cfg['type'])
            _, self.norm = build_norm_layer(norm_cfg, in_channels)

        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [
            out_channels
        ]
        modules = []
        for i in range(num_layers):
            modules.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                modules.append(build_activation_layer(act_cfg))
        modules.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*modules)
        if not trainable:
            self.requires_grad_(False)

    def _normalize(self, x: Tensor) -> Tensor:
        if self.norm is None:
            return x
        if not isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            return self.norm(x)
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] == 0:
            return x
        if self.training and flat.shape[0] == 1:
            # Batch statistics of one row are undefined: use running stats.
            flat = F.batch_norm(flat, self.norm.running_mean,
                                self.norm.running_var, self.norm.weight,
                                self.norm.bias, False, 0., self.norm.eps)
        else:
            flat = self.norm(flat)
        return flat.reshape(x.shape)

    def forward(self, x: Tensor) -> Tensor:
        """Project ``x`` [..., in_channels] -> [..., out_channels].

        ``x`` is cast to the dtype of the weights (e.g. bf16 LLM states into
        an fp32 projector).
        """
        if x.shape[-1] != self.in_channels:
            raise ValueError(f'MLPProjector expects [..., {self.in_channels}] '
                             f'inputs, got {tuple(x.shape)}')
        x = x.to(self.layers[0].weight.dtype)
        return self.layers(self._normalize(x))
