"""The learnable part of METHOD.md: the prompt vectors and the image adaptor."""

import torch
from torch import nn

PROMPT_INIT_STD = 0.02


class PromptLearner(nn.Module):
    """Learnable prompt rows with a shared context (one `independent` and one `dependent` for
    both classes).

    The prompt of class c for image b is, T = 2N + 4 rows:
    `[start, class_c (2 rows), independent (N rows), dependent + pi'_b (N rows), end]`."""

    def __init__(self, width, n_ctx, start_row, end_row):
        super().__init__()
        self.n_ctx = n_ctx
        self.class_normal = nn.Parameter(torch.zeros(2, width))
        self.class_anomalous = nn.Parameter(torch.zeros(2, width))
        self.independent = nn.Parameter(torch.zeros(n_ctx, width))
        self.dependent = nn.Parameter(torch.zeros(n_ctx, width))
        # Buffers, not parameters: the start / end rows are frozen token embeddings.
        self.register_buffer("start_row", start_row.reshape(1, width).clone())
        self.register_buffer("end_row", end_row.reshape(1, width).clone())

    def reset_parameters(self, generator, class_rows=None):
        """METHOD.md's initial values: every row N(0, 0.02), except that `class_rows`
        (`(normal [2, width], anomalous [2, width])`, the token embeddings of "normal brain" /
        "abnormal brain" where the vocabulary has them as two tokens each) seed the class rows."""
        with torch.no_grad():
            for p in (self.class_normal, self.class_anomalous, self.independent, self.dependent):
                p.copy_(torch.randn(p.shape, generator=generator) * PROMPT_INIT_STD)
            if class_rows is not None:
                self.class_normal.copy_(class_rows[0])
                self.class_anomalous.copy_(class_rows[1])

    @property
    def length(self):
        return 2 * self.n_ctx + 4

    def forward(self, shift):
        """Token-embedding sequences of both prompts for each image: `shift` is the adaptor
        output `pi'` `[B, width]`; returns `(normal, anomalous)`, each `[B, T, width]`."""
        batch = shift.shape[0]
        # dependent + pi'_b: the image shifts every one of the N dependent rows.
        dependent = self.dependent[None] + shift[:, None, :]

        def prompt(class_rows):
            fixed = torch.cat([self.start_row, class_rows, self.independent])
            return torch.cat(
                [fixed.expand(batch, -1, -1), dependent, self.end_row.expand(batch, -1, -1)],
                dim=1,
            )

        return prompt(self.class_normal), prompt(self.class_anomalous)


class ImageAdaptor(nn.Module):
    """`linear2(relu(linear1(x)))`, D -> max(1, D // 16) -> width, from the L2-normalised image
    embedding to the shift `pi'` of the dependent context rows."""

    def __init__(self, embed_dim, width):
        super().__init__()
        hidden = max(1, embed_dim // 16)
        self.linear1 = nn.Linear(embed_dim, hidden)
        self.linear2 = nn.Linear(hidden, width)

    def forward(self, image_unit):
        return self.linear2(torch.relu(self.linear1(image_unit)))
