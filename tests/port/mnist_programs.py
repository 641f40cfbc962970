"""A pytorch/examples-style program written for PyTorch (our own, in the manner of
pytorch/examples mnist/main.py and vae/main.py), which tests/test_port.py runs twice: as
written, under PyTorch, and with only its import lines changed to tinylatent's

    import tinylatent as torch
    import tinylatent.nn as nn
    ...

Two models on MNIST (the arrays passed in):
  Net                 mnist/main.py's classifier: conv, conv, max-pool, dropout, linear;
                      log_softmax + nll_loss; Adadelta with StepLR
  ConvAutoencoder     a convolutional autoencoder: reflection padding, instance norm,
                      a weight-normalized conv, pixel-shuffle upsampling, BCE loss;
                      Adam with OneCycleLR; its latent code is reused by a linear probe
Dropout stays in the model; the test runs it with p = 0 (the two libraries draw different
random streams, and the claim is "same losses from the same weights").
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import OneCycleLR, StepLR
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self, dropout=0.25):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(2 * dropout)
        self.fc1 = nn.Linear(16 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


class ConvAutoencoder(nn.Module):
    def __init__(self, latent=16):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(1, 8, 3, stride=2),                     # 14 x 14
            nn.InstanceNorm2d(8, affine=True),
            nn.ReLU(),
            nn.utils.weight_norm(nn.Conv2d(8, 16, 3, stride=2, padding=1)),   # 7 x 7
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 7 * 7, latent),
        )
        self.decoder_in = nn.Linear(latent, 16 * 7 * 7)
        self.decoder = nn.Sequential(
            nn.Conv2d(16, 8 * 4, 3, padding=1),
            nn.PixelShuffle(2),                               # 14 x 14
            nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1),  # 28 x 28
        )

    def encode(self, x):
        return self.encoder(x)

    def forward(self, x):
        z = self.encode(x)
        h = self.decoder_in(z).view(-1, 16, 7, 7)
        return self.decoder(h)                                # logits


def train(args, model, device, train_loader, optimizer, epoch, scheduler=None, kind="net"):
    model.train()
    losses = []
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        if kind == "net":
            loss = F.nll_loss(output, target)
        else:
            loss = F.binary_cross_entropy_with_logits(output, data, reduction="sum") / len(data)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
        if batch_idx % args.log_interval == 0 and args.verbose:
            print('Train Epoch: {} [{}/{}]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset), loss.item()))
    return losses


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    return test_loss, correct / len(test_loader.dataset)


def probe(model, device, train_loader, test_loader, epochs=3):
    """A linear classifier on the frozen autoencoder codes (the usual representation test)."""
    model.eval()
    with torch.no_grad():
        codes = [(model.encode(x.to(device)), y) for x, y in train_loader]
        test_codes = [(model.encode(x.to(device)), y) for x, y in test_loader]
    z_train = torch.cat([z for z, _ in codes])
    y_train = torch.cat([y for _, y in codes])
    mean, std = z_train.mean(0, keepdim=True), z_train.std(0, keepdim=True) + 1e-6
    head = nn.Linear(z_train.size(1), 10).to(z_train.dtype)
    with torch.no_grad():               # a fixed start, so both libraries fit the same head
        head.weight.zero_()
        head.bias.zero_()
    opt = optim.SGD(head.parameters(), lr=0.5, momentum=0.9)
    for _ in range(epochs * 10):
        opt.zero_grad()
        loss = F.cross_entropy(head((z_train - mean) / std), y_train)
        loss.backward()
        opt.step()
    correct = 0
    for z, y in test_codes:
        correct += (head((z - mean) / std).argmax(1) == y).sum().item()
    return loss.item(), correct / sum(len(y) for _, y in test_codes)


def state_arrays(model):
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def run(argv, data, initial_states=None):
    """data: (x_train, y_train, x_test, y_test) NumPy arrays, images in [0, 1], (N, 1, 28,
    28). initial_states: {"net": {...}, "ae": {...}} of NumPy arrays, or None (fresh init).
    Returns every loss, the figures and the initial states used."""
    parser = argparse.ArgumentParser(description='MNIST classifier and autoencoder')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--lr', type=float, default=1.0)
    parser.add_argument('--gamma', type=float, default=0.7)
    parser.add_argument('--dropout', type=float, default=0.25)
    parser.add_argument('--clip', type=float, default=10.0)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--log-interval', type=int, default=10)
    parser.add_argument('--double', action='store_true')
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    dtype = torch.float64 if args.double else torch.float32

    x_train, y_train, x_test, y_test = data
    train_set = TensorDataset(torch.from_numpy(x_train).to(dtype), torch.from_numpy(y_train))
    test_set = TensorDataset(torch.from_numpy(x_test).to(dtype), torch.from_numpy(y_test))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=False,
                              num_workers=0, pin_memory=use_cuda)
    test_loader = DataLoader(test_set, batch_size=1000)

    out = {"initial": {}}
    model = Net(args.dropout).to(device).to(dtype)
    if initial_states is not None:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in
                               initial_states["net"].items()})
    out["initial"]["net"] = state_arrays(model)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    out["net_losses"] = []
    for epoch in range(1, args.epochs + 1):
        out["net_losses"] += train(args, model, device, train_loader, optimizer, epoch)
        scheduler.step()
    out["test_loss"], out["accuracy"] = test(model, device, test_loader)

    ae = ConvAutoencoder().to(device).to(dtype)
    if initial_states is not None:
        ae.load_state_dict({k: torch.from_numpy(v) for k, v in initial_states["ae"].items()})
    out["initial"]["ae"] = state_arrays(ae)
    optimizer = optim.Adam(ae.parameters(), lr=1e-3)
    scheduler = OneCycleLR(optimizer, max_lr=1e-2, epochs=args.epochs,
                           steps_per_epoch=len(train_loader))
    out["ae_losses"] = []
    for epoch in range(1, args.epochs + 1):
        out["ae_losses"] += train(args, ae, device, train_loader, optimizer, epoch,
                                  scheduler, kind="ae")
    out["probe_loss"], out["probe_accuracy"] = probe(ae, device, train_loader, test_loader)
    return out
