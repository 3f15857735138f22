"""Train the seed model for a few steps on random data and save its state_dict."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the model_constructor checkout

import torch  # noqa: E402

from model_constructor import build_model  # noqa: E402

torch.manual_seed(0)
model = build_model(HERE / "configs" / "models" / "my_model.yaml")
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
inputs, targets = torch.randn(64, 128), torch.randn(64, 128)
for step in range(20):
    loss = torch.nn.functional.mse_loss(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 5 == 0:
        print(f"step {step}: loss {loss.item():.4f}")
torch.save(model.state_dict(), "model.pt")
print("saved model.pt")
