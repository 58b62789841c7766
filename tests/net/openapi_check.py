"""placeholder"""
def load(port):
    return None
