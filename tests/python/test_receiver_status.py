"""The status appended for open circuit breakers maps to its own exception."""
import xg2g


def test_circuit_open_has_its_own_exception_class():
    assert xg2g._BY_STATUS[-18] is xg2g.CircuitOpen
    assert issubclass(xg2g.CircuitOpen, xg2g.Error)
    assert xg2g._status_name(-18) == "XG2G_ECIRCUITOPEN"
    assert "CircuitOpen" in xg2g.__all__
