/**
 * SIGHUPs that arrive while `muxftp serve` starts. Its reload handler goes up only once the
 * server listens; before, a SIGHUP had its default action and killed the process (a service
 * manager or deploy hook sending `kill -HUP` right after starting it). From the start of the
 * command they are held here instead, and serve applies them, once, when it is up.
 */
export class StartupHangups {
  private arrived = false;
  private holding = true;
  private readonly onHangup = (): void => {
    this.arrived = true;
  };

  constructor() {
    process.on('SIGHUP', this.onHangup);
  }

  /**
   * Stops holding (safe twice); true when a SIGHUP arrived meanwhile. The caller installs its own
   * handler first, so that none falls in between.
   */
  release(): boolean {
    if (this.holding) process.off('SIGHUP', this.onHangup);
    this.holding = false;
    return this.arrived;
  }
}
