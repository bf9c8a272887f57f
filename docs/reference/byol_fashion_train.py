# The PyTorch BYOL used in docs/methods.md (BYOL) to compare with ours on the embedded Fashion-MNIST
# subset. Usage: INIT=tv PM=10 python byol_fashion_train.py SEED PER_CLASS EPOCHS LR TAU
# (env: INIT=tv torchvision conv init, PM predictor lr multiple, OPT=sgd, WD, BS, H, O, WARM).
# PyTorch BYOL on the same Fashion-MNIST subset/arch/recipe as configs/fashion_mnist/byol.toml,
# to tell "BYOL does not learn in short runs" from "our BYOL has a bug".
import os, gzip, math, sys, time, copy, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(2); torch.manual_seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
PER, EPOCHS, BS = int(sys.argv[2]) if len(sys.argv) > 2 else 200, int(sys.argv[3]) if len(sys.argv) > 3 else 3, 32
LR = float(sys.argv[4]) if len(sys.argv) > 4 else 3e-3
TAU = float(sys.argv[5]) if len(sys.argv) > 5 else 0.99
D = os.path.join(os.path.dirname(__file__), "../../datasets/fashion-mnist/")
def idx(f):
    b = gzip.open(D + f).read(); nd = b[3]; dims = [int.from_bytes(b[4+4*i:8+4*i], "big") for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4+4*nd).reshape(dims)
def head(x, y, n):
    keep, c = [], [0]*10
    for i, l in enumerate(y):
        if c[l] < n: keep.append(i); c[l] += 1
    return torch.tensor(x[keep]).float().div(255), torch.tensor(y[keep]).long()
xtr, ytr = head(idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz"), PER)
xte, yte = head(idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz"), 100)
MEAN, STD = 0.2860, 0.3530
norm = lambda x: ((x - MEAN) / STD).unsqueeze(1).expand(-1, 3, -1, -1)
def aug(x):  # RandomResizedCrop(28,(0.2,1)), hflip 0.5, brightness/contrast jitter 0.4 p 0.8
    n = x.shape[0]; out = torch.empty_like(x)
    for i in range(n):
        for _ in range(10):
            s = np.random.uniform(0.2, 1) * 784; r = math.exp(np.random.uniform(math.log(3/4), math.log(4/3)))
            w = int(round(math.sqrt(s * r))); h = int(round(math.sqrt(s / r)))
            if 0 < w <= 28 and 0 < h <= 28: break
        else: w = h = 28
        t = np.random.randint(0, 29 - h); l = np.random.randint(0, 29 - w)
        c = F.interpolate(x[i, t:t+h, l:l+w][None, None], size=(28, 28), mode="bilinear", align_corners=False)[0, 0]
        if np.random.rand() < 0.5: c = c.flip(1)
        if np.random.rand() < 0.8:
            c = (c * np.random.uniform(0.6, 1.4)).clamp(0, 1)
            m = c.mean(); c = ((c - m) * np.random.uniform(0.6, 1.4) + m).clamp(0, 1)
        out[i] = c
    return norm(out)
class Block(nn.Module):
    def __init__(s, cin, planes, stride):
        super().__init__()
        s.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False); s.bn1 = nn.BatchNorm2d(planes)
        s.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False); s.bn2 = nn.BatchNorm2d(planes)
        s.downsample = None
        if stride != 1 or cin != planes:
            s.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
    def forward(s, x):
        idn = x if s.downsample is None else s.downsample(x)
        return torch.relu(s.bn2(s.conv2(torch.relu(s.bn1(s.conv1(x))))) + idn)
class Net(nn.Module):
    def __init__(s, w=8):
        super().__init__()
        s.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        cin, L = w, []
        for planes, stride in [(w, 1), (2*w, 2), (4*w, 2), (8*w, 2)]:
            L += [Block(cin, planes, stride), Block(planes, planes, 1)]; cin = planes
        s.layers = nn.Sequential(*L)
        H, O = int(os.environ.get('H', '256')), int(os.environ.get('O', '64'))
        s.head = nn.Sequential(nn.Linear(8*w, H), nn.BatchNorm1d(H), nn.ReLU(), nn.Linear(H, O))
    def feat(s, x): return F.adaptive_avg_pool2d(s.layers(s.stem(x)), 1).flatten(1)
    def forward(s, x): return s.head(s.feat(x))
@torch.no_grad()
def knn(net, k=200, t=0.1):
    net.eval()
    ftr = F.normalize(torch.cat([net.feat(norm(xtr[i:i+500])) for i in range(0, len(xtr), 500)]), dim=1)
    fte = F.normalize(torch.cat([net.feat(norm(xte[i:i+500])) for i in range(0, len(xte), 500)]), dim=1)
    net.train()
    sim = fte @ ftr.t(); w, j = sim.topk(k, dim=1); w = (w / t).exp()
    votes = torch.zeros(len(xte), 10).scatter_add_(1, ytr[j], w)
    return (votes.argmax(1) == yte).float().mean().item() * 100
online = Net()
import os
if os.environ.get("INIT") == "tv":
    for m in online.modules():
        if isinstance(m, nn.Conv2d): nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
online = online; target = copy.deepcopy(online); [p.requires_grad_(False) for p in target.parameters()]
H, O = int(os.environ.get('H', '256')), int(os.environ.get('O', '64'))
pred = nn.Sequential(nn.Linear(O, H), nn.BatchNorm1d(H), nn.ReLU(), nn.Linear(H, O))
params = list(online.parameters()) + list(pred.parameters())
PM = float(os.environ.get('PM', '1'))
WD = float(os.environ.get('WD', '1e-6'))
groups = [{'params': list(online.parameters()), 'm': 1.0}, {'params': list(pred.parameters()), 'm': PM}]
if os.environ.get('OPT') == 'sgd': opt = torch.optim.SGD(groups, lr=LR, momentum=0.9, weight_decay=WD)
else: opt = torch.optim.Adam(groups, lr=LR, weight_decay=WD)
BS = int(os.environ.get('BS', '32'))
def nmse(p, z): return 2 - 2 * (F.normalize(p, dim=-1) * F.normalize(z, dim=-1)).sum(-1).mean()
print("random init knn", knn(online), flush=True)
steps = len(xtr) // BS; total = steps * EPOCHS; step = 0; t0 = time.time()
for ep in range(EPOCHS):
    perm = torch.randperm(len(xtr)); tot = 0
    for b in range(steps):
        x = xtr[perm[b*BS:(b+1)*BS]]; x0, x1 = aug(x), aug(x)
        for g in opt.param_groups: g["lr"] = g["m"] * LR * min(1, (step + 1) / int(os.environ.get('WARM', '50')))
        p = pred(online(torch.cat([x0, x1]))); 
        with torch.no_grad(): z = target(torch.cat([x0, x1]))
        loss = nmse(p[:BS], z[BS:]) + nmse(p[BS:], z[:BS])
        opt.zero_grad(); loss.backward(); opt.step(); tot += loss.item()
        tau = 1 - (1 - TAU) * (math.cos(math.pi * step / total) + 1) / 2
        with torch.no_grad():
            for pt, po in zip(target.state_dict().values(), online.state_dict().values()):
                if pt.dtype.is_floating_point: pt.mul_(tau).add_(po, alpha=1 - tau)
        step += 1
    print(f"epoch {ep+1} loss {tot/steps:.4f} knn {knn(online):.2f} ({time.time()-t0:.0f}s)", flush=True)
