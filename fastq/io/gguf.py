def write(path, tensors): raise NotImplementedError
