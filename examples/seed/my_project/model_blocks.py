import torch


class TokenMixer(torch.nn.Module):
    def __init__(self, *, width: int, dropout: float = 0.0):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(width, width),
            torch.nn.GELU(),
            torch.nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


def register(registry):
    registry.register_module("my_project.token_mixer", TokenMixer, signature_policy="strict")
