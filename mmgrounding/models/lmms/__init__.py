from .glamm import GLaMM, parse_glamm_answer

__all__ = ['GLaMM', 'parse_glamm_answer']
