"""The reference's Wanda prune and WikiText-2 perplexity loops in PyTorch, for bench/compare-reference.sh.

A faithful port of locuslab/wanda (lib/prune.py prepare_calibration_input + prune_wanda, lib/layerwrapper.py
WrappedGPT, lib/eval.py eval_ppl_wikitext) with a minimal Hugging Face LLaMA decoder (rotate-half RoPE, GQA,
RMSNorm in float32, SwiGLU), in float32 on the CPU. Token ids come from a JSON file written with the project's
tokenizer and sampler, so both sides compute on the same windows. Never a dependency of the package.
  python3 compare-reference.py blas                                     # which BLAS torch got (exit 1 unless OpenBLAS)
  python3 compare-reference.py prune MODEL IDS.json OUT.pt [NSAMPLES] [SPARSITY]
  python3 compare-reference.py ppl MODEL IDS.json SEQLEN WINDOWS          # prints JSON: ppl, seconds, tokens/s
  python3 compare-reference.py masks OUT.pt PROJECT_CHECKPOINT_DIR        # prints JSON: mask positions that differ
"""
import json, math, os, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {'BF16': torch.int16, 'F32': torch.float32, 'F16': torch.float16}


def load_safetensors(folder):
    """Every tensor of the folder's *.safetensors as float32 (BF16 widened exactly)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith('.safetensors'):
            continue
        with open(os.path.join(folder, name), 'rb') as f:
            n = int.from_bytes(f.read(8), 'little')
            header = json.loads(f.read(n))
            data = f.read()
        for key, meta in header.items():
            if key == '__metadata__':
                continue
            a, b = meta['data_offsets']
            t = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[meta['dtype']]).reshape(meta['shape'])
            out[key] = (t.to(torch.int32) << 16).view(torch.float32) if meta['dtype'] == 'BF16' else t.float()
    return out


class RMSNorm(nn.Module):
    def __init__(self, w, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(w, requires_grad=False), eps

    def forward(self, x):
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps))


def linear(w):
    m = nn.Linear(w.shape[1], w.shape[0], bias=False)
    m.weight = nn.Parameter(w, requires_grad=False)
    return m


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, sd, i, c):
        super().__init__()
        p = f'model.layers.{i}.'
        self.nh, self.nkv = c['num_attention_heads'], c.get('num_key_value_heads', c['num_attention_heads'])
        self.hd = c['hidden_size'] // self.nh
        self.input_layernorm = RMSNorm(sd[p + 'input_layernorm.weight'], c['rms_norm_eps'])
        self.post_attention_layernorm = RMSNorm(sd[p + 'post_attention_layernorm.weight'], c['rms_norm_eps'])
        for n in ('q_proj', 'k_proj', 'v_proj', 'o_proj'):
            setattr(self, n, linear(sd[p + 'self_attn.' + n + '.weight']))
        for n in ('gate_proj', 'up_proj', 'down_proj'):
            setattr(self, n, linear(sd[p + 'mlp.' + n + '.weight']))

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, s, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(b, s, self.nkv, self.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = (t.repeat_interleave(self.nh // self.nkv, dim=1) for t in (k, v))
        att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(self.hd) + mask, dim=-1, dtype=torch.float32)
        x = x + self.o_proj((att @ v).transpose(1, 2).reshape(b, s, -1))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, folder):
        super().__init__()
        c = json.load(open(os.path.join(folder, 'config.json')))
        sd = load_safetensors(folder)
        self.embed_tokens = nn.Embedding.from_pretrained(sd['model.embed_tokens.weight'])
        self.layers = nn.ModuleList(Block(sd, i, c) for i in range(c['num_hidden_layers']))
        self.norm = RMSNorm(sd['model.norm.weight'], c['rms_norm_eps'])
        self.lm_head = linear(sd.get('lm_head.weight', sd['model.embed_tokens.weight']))
        self.hd, self.theta = c['hidden_size'] // c['num_attention_heads'], c.get('rope_theta', 10000.0)

    def rope(self, s):
        inv = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2, dtype=torch.int64).float() / self.hd))
        f = torch.outer(torch.arange(s).float(), inv)
        emb = torch.cat((f, f), dim=-1)
        mask = torch.full((s, s), torch.finfo(torch.float32).min).triu(1)
        return emb.cos(), emb.sin(), mask

    def forward(self, ids):
        cos, sin, mask = self.rope(ids.shape[1])
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.norm(x))


LINEARS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')


class WrappedGPT:  # lib/layerwrapper.py: the running mean of squared input norms per input feature
    def __init__(self, layer):
        self.layer, self.nsamples = layer, 0
        self.scaler_row = torch.zeros(layer.weight.shape[1])

    def add_batch(self, inp, out):
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        inp = inp.reshape((-1, inp.shape[-1])).t()
        self.scaler_row *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        self.scaler_row += torch.norm(inp.type(torch.float32), p=2, dim=1) ** 2 / self.nsamples


@torch.no_grad()
def prune_wanda(model, calib, sparsity):  # lib/prune.py prune_wanda, unstructured
    inps = torch.stack([model.embed_tokens(w.unsqueeze(0))[0] for w in calib])  # prepare_calibration_input
    outs = torch.zeros_like(inps)
    cos, sin, mask = model.rope(calib.shape[1])
    for layer in model.layers:
        subset = {n: getattr(layer, n) for n in LINEARS}
        wrapped = {n: WrappedGPT(subset[n]) for n in subset}
        handles = [subset[n].register_forward_hook(lambda _, i, o, n=n: wrapped[n].add_batch(i[0].data, o.data)) for n in subset]
        for j in range(len(calib)):
            outs[j] = layer(inps[j].unsqueeze(0), cos, sin, mask)[0]
        for h in handles:
            h.remove()
        for n in subset:
            W = subset[n].weight.data
            W_metric = torch.abs(W) * torch.sqrt(wrapped[n].scaler_row.reshape((1, -1)))
            W_mask = torch.zeros_like(W_metric) == 1
            indices = torch.sort(W_metric, dim=-1, stable=True)[1][:, : int(W_metric.shape[1] * sparsity)]
            W_mask.scatter_(1, indices, True)
            W[W_mask] = 0
        for j in range(len(calib)):
            outs[j] = layer(inps[j].unsqueeze(0), cos, sin, mask)[0]
        inps, outs = outs, inps


@torch.no_grad()
def eval_ppl(model, ids, seqlen, windows, bs=1):  # lib/eval.py eval_ppl_wikitext
    testenc = torch.tensor(ids).unsqueeze(0)
    nsamples = min(testenc.numel() // seqlen, windows)
    nlls = []
    for i in range(0, nsamples, bs):
        j = min(i + bs, nsamples)
        inputs = testenc[:, i * seqlen : j * seqlen].reshape(j - i, seqlen)
        lm_logits = model(inputs)
        shift_logits, shift_labels = lm_logits[:, :-1, :].contiguous(), inputs[:, 1:]
        loss = nn.CrossEntropyLoss()(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1))
        nlls.append(loss.float() * seqlen * (j - i))
    return torch.exp(torch.stack(nlls).sum() / (nsamples * seqlen)).item(), nsamples


def blas():
    torch.mm(torch.randn(512, 512), torch.randn(512, 512))
    libs = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'blas' in l.split()[-1].lower()})
    ok = any('openblas' in l for l in libs)
    import ctypes
    blas_threads = None
    for l in libs:
        if 'libopenblas' in l:
            blas_threads = ctypes.CDLL(l).openblas_get_num_threads()
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'blasThreads': blas_threads,
                      'blas': libs, 'openblas': ok}))
    sys.exit(0 if ok else 1)


def main(cmd, *a):
    # PyTorch's own default, as a user gets it (here: 1 intra-op OpenMP thread on 2 cores, while OpenBLAS's pthread
    # pool runs every matmul on every core). TORCH_THREADS=N sets torch.set_num_threads(N) instead.
    if os.environ.get('TORCH_THREADS'):
        torch.set_num_threads(int(os.environ['TORCH_THREADS']))
    if cmd == 'blas':
        return blas()
    if cmd == 'masks':
        mine = torch.load(a[0])
        theirs = load_safetensors(a[1])
        diff = sum(int(((w == 0) != (theirs[k] == 0)).sum()) for k, w in mine.items())
        total = sum(w.numel() for w in mine.values())
        return print(json.dumps({'maskPositionsDiffering': diff, 'of': total}))
    model, ids = Llama(a[0]), json.load(open(a[1]))
    if cmd == 'prune':
        calib = torch.tensor(ids['calibration'][: int(a[3]) if len(a) > 3 else None])
        prune_wanda(model, calib, float(a[4]) if len(a) > 4 else 0.5)
        sd = {f'model.layers.{i}.{"self_attn" if n[0] in "qkvo" else "mlp"}.{n}.weight': getattr(l, n).weight.data
              for i, l in enumerate(model.layers) for n in LINEARS}
        torch.save(sd, a[2])
    elif cmd == 'ppl':
        t0 = time.perf_counter()
        ppl, n = eval_ppl(model, ids['eval'], int(a[2]), int(a[3]))
        s = time.perf_counter() - t0
        print(json.dumps({'ppl': ppl, 'windows': n, 'seconds': s, 'tokensPerSecond': n * int(a[2]) / s}))


if __name__ == '__main__':
    main(*sys.argv[1:])
