"""What the engine benches time: the engine, the loop reference and PyTorch, each able to
train one step on the next batch and to predict, on the same network with the same weights.

One training step is what the app runs: the next uint8 batch -> x/255 - 0.5 -> forward ->
loss -> backward -> SGD update (with momentum when asked), the loss read back every step.
"""
from __future__ import annotations

import statistics
import time


def rate(step, batch: int, seconds: float) -> float:
    """Samples per second of ``step()`` (one step = ``batch`` samples) over ``seconds``."""
    step()  # warm up (buffers, caches)
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(5 if batch < 32 else 1):
            step()
            n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def latency(call, seconds: float) -> float:
    """Median seconds per call, over groups of calls (of one call when calls are slow)
    filling ``seconds``, at least three groups."""
    start = time.perf_counter()
    call()
    group = 1 if time.perf_counter() - start > 1e-3 else 10
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t = time.perf_counter()
        for _ in range(group):
            call()
        times.append((time.perf_counter() - t) / group)
    return statistics.median(times)


class Engine:
    """``Trainer.step`` on a model of ``config`` (the seed network by default)."""
    name = "engine"

    def __init__(self, images, labels, config=None, lr=0.005, momentum=0.0):
        from convscope.engine.net.model import Model, build_config
        self.model = Model(config or build_config("seed"), seed=0)
        self.images, self.labels = images, labels
        self.lr, self.momentum = lr, momentum
        self.trainers = {}

    def activate(self) -> None:
        pass

    def train_step(self, batch: int):
        from convscope.engine.net.train import Trainer
        if batch not in self.trainers:
            self.trainers[batch] = Trainer(self.model.copy(), self.images, self.labels,
                                           lr=self.lr, momentum=self.momentum,
                                           batch_size=batch, seed=1)
        return self.trainers[batch].step

    def predict(self, images):
        from convscope.engine.net.model import prepare_input
        return self.model.predict_proba(prepare_input(images))

    def first_loss(self, images, labels) -> float:
        from convscope.engine.net.layers import softmax_cross_entropy
        from convscope.engine.net.model import prepare_input
        losses, _, _ = softmax_cross_entropy(self.model.forward(prepare_input(images)), labels)
        return float(losses.mean())


class Reference:
    """The design notes' loops (engine/net/notes.py), one sample per step."""
    name = "reference"

    def __init__(self, engine: Engine, images, labels):
        from convscope.engine.net.notes import ReferenceNet
        self.net = ReferenceNet(engine.model.config, engine.model.params())
        self.images, self.labels, self.i = images, labels, 0

    def activate(self) -> None:
        pass

    def train_step(self, batch: int):
        from convscope.engine.net.model import prepare_input

        def step():
            i = self.i = (self.i + 1) % len(self.images)
            self.net.train_step(prepare_input(self.images[i]), int(self.labels[i]), lr=0.005)
        return step

    def predict(self, images):
        from convscope.engine.net.model import prepare_input
        return [self.net.forward(x)["probs"] for x in prepare_input(images)]


def torch_layers(torch, model) -> list:
    """The engine ``model``'s layers as PyTorch modules (NCHW) holding its weights."""
    nn, shape, out = torch.nn, (28, 28, 1), []
    first_dense = True
    for layer in model.layers:
        p = {k: torch.from_numpy(v.copy()) for k, v in layer.params.items()}
        if layer.kind == "conv":
            mod = nn.Conv2d(layer.c_in, layer.c_out, layer.k, layer.stride, layer.pad,
                            bias="b" in p)
            with torch.no_grad():  # (k, k, C_in, C_out) -> (C_out, C_in, k, k)
                mod.weight.copy_(p["W"].permute(3, 2, 0, 1))
                if "b" in p:
                    mod.bias.copy_(p["b"])
        elif layer.kind == "pool":
            if layer.mode == "min":
                raise ValueError("PyTorch has no min-pooling")
            kind = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
            mod = kind(layer.size, layer.stride)
        elif layer.kind == "relu":
            mod = nn.ReLU()
        elif layer.kind == "flatten":
            mod = nn.Flatten()
        else:
            w = p["W"]  # (n_in, n_out); the engine flattens (H, W, C), PyTorch (C, H, W)
            if first_dense:
                h, wd, c = shape
                w = w.reshape(h, wd, c, -1).permute(3, 2, 0, 1).reshape(w.shape[1], -1)
            else:
                w = w.T
            mod = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                mod.weight.copy_(w)
                mod.bias.copy_(p["b"])
            first_dense = False
        if layer.kind != "flatten":
            shape = layer.out_shape(shape)
        out.append(mod)
    return out


class Torch:
    """The engine's network in PyTorch (NCHW), started from the engine's weights."""

    def __init__(self, engine: Engine, images, labels, threads: int):
        import torch
        self.torch, self.threads = torch, threads
        self.name = "torch" if threads == 2 else f"torch_{threads}thread"
        self.lr, self.momentum = engine.lr, engine.momentum
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(*torch_layers(torch, engine.model))
        self.images = torch.from_numpy(images.copy())  # torch wants a writable array
        self.labels = torch.from_numpy(labels.astype("int64"))
        self.loss = torch.nn.CrossEntropyLoss()
        self.copies = {}

    def _input(self, images):
        return images.unsqueeze(1).float().mul_(1 / 255).sub_(0.5)

    def train_step(self, batch: int):
        torch = self.torch
        if batch not in self.copies:
            import copy
            net = copy.deepcopy(self.net)
            opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=self.momentum)
            order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(1))
            self.copies[batch] = (net, opt, order, [0])
        net, opt, order, cursor = self.copies[batch]

        def step():
            i = cursor[0]
            if i + batch > len(order):
                i = 0
            idx = order[i:i + batch]
            cursor[0] = i + batch
            opt.zero_grad(set_to_none=True)
            loss = self.loss(net(self._input(self.images[idx])), self.labels[idx])
            loss.backward()
            opt.step()
            return loss.item()
        return step

    def activate(self) -> None:
        self.torch.set_num_threads(self.threads)

    def predict(self, images):
        torch = self.torch
        with torch.no_grad():
            x = self._input(torch.from_numpy(images.copy()))
            return torch.cat([torch.softmax(self.net(x[i:i + 1000]), 1)
                              for i in range(0, len(x), 1000)]).numpy()

    def first_loss(self, images, labels) -> float:
        with self.torch.no_grad():
            x = self._input(self.torch.from_numpy(images.copy()))
            return float(self.loss(self.net(x), self.torch.from_numpy(labels.astype("int64"))))
