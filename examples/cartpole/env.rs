//! Gymnasium's `CartPole-v1`, step for step, and an ASCII drawing of it.
//!
//! A pole is hinged on a cart that moves along a frictionless track; each
//! step pushes the cart left or right with a fixed force. The physics,
//! constants, thresholds and Euler integration are those of
//! `gymnasium/envs/classic_control/cartpole.py` (Barto, Sutton & Anderson,
//! 1983); the 500-step cap is `CartPole-v1`'s `TimeLimit`. As there, the
//! state is integrated in `f64` and observed as `f32`.

use lam::rng::Generator;

/// Gravity, m/s².
pub const GRAVITY: f64 = 9.8;
/// Mass of the cart, kg.
pub const MASS_CART: f64 = 1.0;
/// Mass of the pole, kg.
pub const MASS_POLE: f64 = 0.1;
/// Half the pole's length, m (Gymnasium's `length`).
pub const HALF_LENGTH: f64 = 0.5;
/// Magnitude of the push, N.
pub const FORCE_MAG: f64 = 10.0;
/// Seconds per step.
pub const TAU: f64 = 0.02;
/// The episode ends when the cart leaves `±X_THRESHOLD` m ...
pub const X_THRESHOLD: f64 = 2.4;
/// ... or the pole leans more than 12° (0.2095 rad) from upright.
pub const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
/// `CartPole-v1` truncates episodes at this many steps.
pub const MAX_STEPS: usize = 500;

/// One cart-pole: state `[x, ẋ, θ, θ̇]` (θ = 0 upright, positive leaning right).
#[derive(Debug, Clone)]
pub struct CartPole {
    /// `[x, x_dot, theta, theta_dot]`.
    pub state: [f64; 4],
    /// Steps taken since the last reset.
    pub steps: usize,
}

/// What one [`CartPole::step`] returns besides the new state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// 1 for every step, the last one included.
    pub reward: f64,
    /// The pole fell or the cart left the track.
    pub terminated: bool,
    /// The 500-step cap was reached.
    pub truncated: bool,
}

impl Outcome {
    /// The episode is over, either way.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

impl CartPole {
    /// A cart-pole reset from `rng`.
    pub fn new(rng: &mut Generator) -> CartPole {
        let mut env = CartPole {
            state: [0.0; 4],
            steps: 0,
        };
        env.reset(rng);
        env
    }

    /// Starts a new episode: each state variable uniform in `[-0.05, 0.05)`.
    pub fn reset(&mut self, rng: &mut Generator) -> [f32; 4] {
        self.state = std::array::from_fn(|_| rng.uniform() * 0.1 - 0.05);
        self.steps = 0;
        self.observation()
    }

    /// The state as the policy sees it.
    pub fn observation(&self) -> [f32; 4] {
        self.state.map(|v| v as f32)
    }

    /// Pushes the cart left (action 0) or right (action 1) for one step.
    pub fn step(&mut self, action: usize) -> Outcome {
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if action == 1 { FORCE_MAG } else { -FORCE_MAG };
        let total_mass = MASS_CART + MASS_POLE;
        let pole_mass_length = MASS_POLE * HALF_LENGTH;
        let (sin, cos) = theta.sin_cos();

        // Florian (2007), "Correct equations for the dynamics of the cart-pole system".
        let temp = (force + pole_mass_length * theta_dot * theta_dot * sin) / total_mass;
        let theta_acc = (GRAVITY * sin - cos * temp)
            / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos * cos / total_mass));
        let x_acc = temp - pole_mass_length * theta_acc * cos / total_mass;

        // Explicit Euler: positions move with the old velocities.
        self.state = [
            x + TAU * x_dot,
            x_dot + TAU * x_acc,
            theta + TAU * theta_dot,
            theta_dot + TAU * theta_acc,
        ];
        self.steps += 1;
        let [x, _, theta, _] = self.state;
        Outcome {
            reward: 1.0,
            terminated: x.abs() > X_THRESHOLD || theta.abs() > THETA_THRESHOLD,
            truncated: self.steps >= MAX_STEPS,
        }
    }
}

/// The cart-pole as text: the pole above the cart on a track `±2.4` m wide.
pub fn draw(env: &CartPole) -> String {
    const WIDTH: usize = 61; // Track columns; the middle one is x = 0.
    const POLE_ROWS: usize = 8;
    let [x, _, theta, _] = env.state;
    let column = |x: f64| ((x + X_THRESHOLD) / (2.0 * X_THRESHOLD) * (WIDTH - 1) as f64).round();
    let cart = column(x);

    let mut rows = Vec::new();
    for k in (1..=POLE_ROWS).rev() {
        // A character cell is about twice as tall as wide.
        let c = cart + (2.0 * k as f64 * theta.tan()).round();
        let glyph = match theta {
            t if t > 0.05 => '/',
            t if t < -0.05 => '\\',
            _ => '|',
        };
        let mut row = vec![' '; WIDTH + 4];
        if (0.0..(WIDTH + 4) as f64).contains(&(c + 2.0)) {
            row[(c + 2.0) as usize] = glyph;
        }
        rows.push(row.into_iter().collect::<String>());
    }
    let mut cart_row = vec![' '; WIDTH + 4];
    for (i, ch) in "[###]".chars().enumerate() {
        let at = cart as isize + i as isize;
        if (0..(WIDTH + 4) as isize).contains(&at) {
            cart_row[at as usize] = ch;
        }
    }
    rows.push(cart_row.into_iter().collect());
    rows.push(format!(" |{}|", "=".repeat(WIDTH)));
    rows.push(format!(
        " step {:3}   x {:+.2} m   angle {:+5.1}°",
        env.steps,
        x,
        theta.to_degrees()
    ));
    rows.join("\n")
}
