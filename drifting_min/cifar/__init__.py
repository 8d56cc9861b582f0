"""The CIFAR-10 trainer (lesson 07): one command trains a one-step generator with feature-space drifting.

Modules, from the bottom up (imports run one way: nothing here imports ``train`` but the command):

* ``config``     every setting, once (``CifarConfig``); the command's options are made from it
* ``data``       the official archive (md5-checked), local archives, image folders and zips; a resume-safe order
* ``encoder``    the small ResNet-style feature encoder, trained on the labels first and cached
* ``generator``  noise (and a class) -> 32x32 image, one network evaluation
* ``fid``        FID and KID with the Inception-v3 2015-12-05 network; sample shards
* ``sample``     images, grids
* ``train``      the loss through the encoder, the loop, EMA, checkpoints, resume
* ``plot``       the log's curves (the only user of matplotlib)
* ``__main__``   ``python -m drifting_min.cifar {train,sample,fid,plot}``

It builds on ``drifting_min.features`` (the released batch loss, multi-scale features) and the core.
"""
