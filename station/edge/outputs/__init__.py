"""What the station drives: LEDs, buzzer and stack light (``feedback``), the conveyor's reject arm
(``reject``), and the choice of gpiozero pin factory (``pins``)."""
