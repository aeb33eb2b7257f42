"""Query-to-``<seg>`` similarity of LLaVA-Grounding's OpenSeeD decoder.

``logit[b, q, n] = exp(logit_scale) * < normalize(x[b, q] @ class_embed),
h[b, n] >`` where ``x`` are LayerNorm-ed query features (the norm belongs to
the caller: ``memory_trans_norm`` for encoder proposals, the decoder norm
for decoder predictions), ``class_embed`` is a ``[d, prompt_dim]`` matrix
that maps queries into the LLM's hidden space and ``h`` are the
``<seg>`` states as given (NOT normalised, so logits scale with |h|).
``logit_scale`` starts at 1 (factor e). mmdet's ``ContrastiveEmbed`` has
neither the projection nor the normalisation.

Padded ``<seg>`` columns are not set to a sentinel value: callers exclude
them with the prompt mask (``masked_max`` here for query selection, loss
weights in the criterion), so a sample's logits do not depend on how many
tokens the other samples of its batch have.
"""
import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmgrounding.registry import MODELS


@MODELS.register_module()
class SegTokenSimilarity(BaseModule):
    """Scaled cosine-projected similarity between queries and prompts.

    Args:
        embed_dims: query width d.
        prompt_dim: width D of the ``<seg>`` states (LLM hidden size).
        norm_eps: added to the projected query's L2 norm (official 1e-7).
    """

    def __init__(self, embed_dims: int, prompt_dim: int,
                 norm_eps: float = 1e-7, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.prompt_dim = prompt_dim
        self.norm_eps = norm_eps
        self.class_embed = nn.Parameter(torch.empty(embed_dims, prompt_dim))
        self.logit_scale = nn.Parameter(torch.ones(()))
        self.init_weights()

    def init_weights(self) -> None:
        """Truncated normal (std 0.02) projection; ``logit_scale`` = 1."""
        nn.init.trunc_normal_(self.class_embed, std=.02)
        with torch.no_grad():
            self.logit_scale.fill_(1.0)

    def forward(self, queries: Tensor, prompts: Tensor) -> Tensor:
        """Logits of every query against every prompt column.

        Args:
            queries: [B, Q, d] normed query features.
            prompts: [B, N, D] ``<seg>`` states (N may be 0).

        Returns:
            [B, Q, N] logits (padded columns included; mask them).
        """
        if queries.shape[-1] != self.embed_dims:
            raise ValueError(f'queries must be [..., {self.embed_dims}], '
                             f'got {tuple(queries.shape)}')
        if prompts.dim() != 3 or prompts.shape[-1] != self.prompt_dim:
            raise ValueError(f'prompts must be [B, N, {self.prompt_dim}], '
                             f'got {tuple(prompts.shape)}')
        proj = queries @ self.class_embed
        proj = proj / (proj.norm(dim=-1, keepdim=True) + self.norm_eps)
        return self.logit_scale.exp() * proj @ prompts.transpose(1, 2)

    @staticmethod
    def masked_max(logits: Tensor, prompt_mask: Tensor) -> Tensor:
        """Max over the real prompt columns: [B, Q, N] -> [B, Q].

        Queries of a sample without real columns get -inf.
        """
        if logits.shape[-1] == 0:
            return logits.new_full(logits.shape[:2], float('-inf'))
        masked = logits.masked_fill(~prompt_mask[:, None, :].bool(),
                                    float('-inf'))
        return masked.max(-1).values


__all__ = ['SegTokenSimilarity']
