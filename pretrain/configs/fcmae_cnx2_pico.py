# FCMAE pre-training of ConvNeXt V2-Pico (9.1M parameters with a 1k head): the paper recipe in
# _base_/fcmae.py is the same for every size (800 epochs, effective batch 4096, blr 1.5e-4).
_base_ = './_base_/fcmae.py'
model = dict(arch='pico')
