"""The method registry: permuted-diagonal, SmartDeal and the baselines behind one interface
(:class:`~.base.Method`), registered by name. Importing this package registers the built-in
methods, in the order ``compare`` shows them; a method of its own is one module that subclasses
:class:`Method` and calls :func:`register`."""

from .base import (Built, Method, Option, PowerSubject, Unsupported, flag_context, get,
                   methods, names, owner, register, unregister)
from .baselines import CirculantMethod, DenseMethod, EieMethod, SmeMethod
from .permdiag import PermDiagMethod
from .smartdeal import SmartDealMethod

__all__ = ["Built", "Method", "Option", "PowerSubject", "Unsupported", "flag_context", "get", "methods", "names",
           "owner", "register", "unregister"]

for _cls in (DenseMethod, PermDiagMethod, EieMethod, CirculantMethod, SmartDealMethod, SmeMethod):
    register(_cls())
