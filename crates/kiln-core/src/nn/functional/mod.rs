//! `torch.nn.functional` counterparts.
