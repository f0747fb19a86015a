#!/usr/bin/env python3
"""Is `cachet bench scale`'s calibrated synthetic data harder or easier for HNSW than real
embeddings? Measured at the largest size real vectors are at hand (about 30,000 Quora
questions embedded by cachet's own model, `cachet embed-pairs`; see eval/README.md).

Builds the same kind of graph on both (hnswlib: M=16, ef_construction 200, inner product on
unit vectors, as the product's hnsw_rs graph) and prints recall@1 against brute force at small
search breadths, where the two can differ:
- real points: fresh queries are other Quora questions (a second `embed-pairs` file),
  paraphrase-like queries are stored points plus the generator's paraphrase noise;
- calibrated points (the generator's model, as in eval/fit_synthetic.py), as many, with its
  fresh draws and paraphrases.

    ~/.cache/cachet/gptcache-venv/bin/python eval/real_vs_synthetic.py /tmp/v_qqptrain.f32 /tmp/v_qqpdev.f32

Needs numpy and hnswlib (benches/gptcache/requirements.txt). Seeded.
"""
import sys
import numpy as np, hnswlib
D=384
pairs=np.fromfile(sys.argv[1],dtype='<f4').reshape(-1,2,D)
real=pairs.reshape(-1,D); real=real[np.linalg.norm(real,axis=1)>0.5]
# dedupe exact duplicates
_,idx=np.unique(np.round(real,4),axis=0,return_index=True); real=real[np.sort(idx)]
dev=np.fromfile(sys.argv[2],dtype='<f4').reshape(-1,D); dev=dev[np.linalg.norm(dev,axis=1)>0.5]
N=len(real); print('real points',N,'fresh queries',len(dev))
k=np.arange(1,D+1); lam=(k+18.0)**-1.039*np.exp(-np.maximum(k-228,0)/74.6); sd=np.sqrt(lam/lam.sum())
rng=np.random.default_rng(3)
def syn(n, topics, extra):
    tot=n+extra
    cent=rng.standard_normal((topics,D))*sd
    t=rng.integers(0,topics,tot)
    sp=np.exp(rng.normal(np.log(0.9),0.6,tot))[:,None]
    x=cent[t]+rng.standard_normal((tot,D))*sd*sp
    x/=np.linalg.norm(x,axis=1,keepdims=True); x[:,-1]+=0.212; x/=np.linalg.norm(x,axis=1,keepdims=True)
    return x[:n].astype(np.float32), x[n:].astype(np.float32)
def para(x, scale=0.48):
    q=x+rng.standard_normal(x.shape)*sd*scale; return (q/np.linalg.norm(q,axis=1,keepdims=True)).astype(np.float32)
def recall(data, queries, efs):
    ix=hnswlib.Index(space='ip',dim=D); ix.init_index(max_elements=len(data),ef_construction=200,M=16,random_seed=1)
    ix.set_num_threads(1); ix.add_items(data)  # one thread: the same graph every run
    truth=np.argmax(queries@data.T,axis=1)
    out=[]
    for ef in efs:
        ix.set_ef(ef); lab,_=ix.knn_query(queries,k=1); out.append(round(float((lab[:,0]==truth).mean()),3))
    return out
efs=[4,8,16,32]
sel=rng.choice(N,2000,replace=False)
print('ef',efs)
print('real, fresh (other Quora questions)', recall(real, dev[:2000], efs))
print('real, paraphrase-like (stored + calibrated noise)', recall(real, para(real[sel]), efs))
sx,sf=syn(N, N//4, 2000)
print('calibrated, fresh', recall(sx, sf, efs))
print('calibrated, paraphrase-like', recall(sx, para(sx[sel]), efs))
